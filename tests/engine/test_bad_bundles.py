"""Broken bundles and impossible load requests raise the documented errors (issue 12):
``ModelError`` naming the bundle file and field, ``BackendUnavailable`` naming what to
install; never a raw onnxruntime/torch exception or a numpy error at the first click."""
import json
import logging
import shutil

import numpy as np
import pytest

import ivos
from ivos.runtime.model import SHIPPED_MODELS


def _copy(tiny_bundle, tmp_path, edit=None, files=None):
    """A copy of the tiny bundle with ``edit(card)`` applied and ``files`` overwritten."""
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    card = json.loads((out / "model.json").read_text())
    if edit is not None:
        edit(card)
    (out / "model.json").write_text(json.dumps(card))
    for name, data in (files or {}).items():
        (out / name).write_bytes(data)
    return out


def _click(model):
    p = ivos.ImagePredictor(model, crf=False)
    p.set_image(np.full((40, 50, 3), 90, np.uint8))
    return p.add_click(10, 10, True)


@pytest.mark.parametrize("how", ["garbage", "truncated", "empty"])
@pytest.mark.parametrize("backend", ["ort", "auto"])
def test_corrupt_onnx_raises_model_error_naming_the_file(tiny_bundle, tmp_path, how, backend):
    data = (tiny_bundle / "model.onnx").read_bytes()
    broken = {"garbage": b"this is not an ONNX file\x00\xff", "truncated": data[:len(data) // 2], "empty": b""}[how]
    bundle = _copy(tiny_bundle, tmp_path, files={"model.onnx": broken})
    with pytest.raises(ivos.ModelError) as e:
        ivos.load(bundle, backend=backend, threads=1)
    message = str(e.value)
    assert "model.json" in message and "artifacts.onnx" in message and "model.onnx" in message
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no raw onnxruntime chain shown


def _set_spatial(size):
    def edit(card):
        for spec in card["inputs"] + card["outputs"]:
            spec["shape"][2:] = [size, size]
        card["working_size"] = [size, size]
    return edit


def test_card_shapes_that_differ_from_the_network_fail_at_load(tiny_bundle, tmp_path):
    """The card says 256 (consistently), the ONNX graph has 64: ModelError at load naming
    the field, not an onnxruntime/numpy error at the first click."""
    bundle = _copy(tiny_bundle, tmp_path, _set_spatial(256))
    with pytest.raises(ivos.ModelError, match=r"inputs\[0\]\.shape \('image'\) is \[1, 3, 256, 256\].*"
                                              r"model\.onnx has \[1, 3, 64, 64\]"):
        ivos.load(bundle, backend="ort", threads=1)


def test_card_input_that_disagrees_with_working_size(tiny_bundle, tmp_path):
    def edit(card):
        card["inputs"][2]["shape"] = [1, 1, 256, 256]
    bundle = _copy(tiny_bundle, tmp_path, edit)
    with pytest.raises(ivos.ModelError, match=r"inputs\[2\]\.shape \('clicks'\).*working_size"):
        ivos.load(bundle, backend="ort", threads=1)


def test_card_dtype_and_names_that_differ_from_the_network(tiny_bundle, tmp_path):
    def dtype(card):
        card["outputs"][0]["dtype"] = "float16"
    with pytest.raises(ivos.ModelError, match=r"outputs\[0\]\.dtype \('logits'\)"):
        ivos.load(_copy(tiny_bundle, tmp_path / "a", dtype), backend="ort", threads=1)

    def extra(card):
        card["inputs"].append({"name": "extra", "shape": [1], "dtype": "float32"})
    with pytest.raises(ivos.ModelError, match=r"field 'inputs' names .*'extra'.*model\.onnx"):
        ivos.load(_copy(tiny_bundle, tmp_path / "b", extra), backend="ort", threads=1)


def _with_int8(card):
    card["artifacts"]["onnx_int8"] = "model.int8.onnx"


def test_corrupt_int8_with_auto_precision_falls_back_to_fp32_with_a_warning(tiny_bundle, tmp_path, caplog):
    """precision="auto" means "int8 when the bundle has a usable one": a corrupt optional
    int8 file must not make the bundle unusable, but it must not pass silently either."""
    bundle = _copy(tiny_bundle, tmp_path, _with_int8, {"model.int8.onnx": b"\x08\x07corrupt"})
    with caplog.at_level(logging.WARNING, logger="ivos"):
        model = ivos.load(bundle, threads=1)
    assert model.precision == "fp32" and model.backend == "onnxruntime:CPUExecutionProvider"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "ivos"]
    assert len(warnings) == 1
    assert "artifacts.onnx_int8" in warnings[0].getMessage() and "float network" in warnings[0].getMessage()
    assert _click(model).mask.shape == (40, 50)


def test_corrupt_int8_with_explicit_int8_raises(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path, _with_int8, {"model.int8.onnx": b"\x08\x07corrupt"})
    with pytest.raises(ivos.ModelError, match=r"artifacts\.onnx_int8 names model\.int8\.onnx, which ONNX Runtime "
                                              r"cannot load"):
        ivos.load(bundle, precision="int8", threads=1)


def _other_network(size: int) -> bytes:
    """A valid ONNX graph with the click I/O names at another working size."""
    import onnx
    from onnx import TensorProto, helper

    def io(name, channels):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, channels, size, size])

    graph = helper.make_graph([helper.make_node("Add", ["mask", "clicks"], ["logits"])], "other",
                              [io("image", 3), io("mask", 1), io("clicks", 1)], [io("logits", 1)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_int8_of_another_network_falls_back_or_raises(tiny_bundle, tmp_path, caplog):
    """An int8 file that loads but does not match the card (another working size) is
    refused like a corrupt one: auto runs the float network, int8 raises."""
    bundle = _copy(tiny_bundle, tmp_path, _with_int8, {"model.int8.onnx": _other_network(32)})
    with caplog.at_level(logging.WARNING, logger="ivos"):
        assert ivos.load(bundle, threads=1).precision == "fp32"
    assert any("model.int8.onnx has [1, 3, 32, 32]" in r.getMessage() for r in caplog.records)
    with pytest.raises(ivos.ModelError, match=r"inputs\[0\]\.shape \('image'\) is \[1, 3, 64, 64\], but the "
                                              r"network model\.int8\.onnx has \[1, 3, 32, 32\]"):
        ivos.load(bundle, precision="int8", threads=1)


def test_cuda_without_the_cuda_provider_says_install_onnxruntime_gpu(tiny_bundle, monkeypatch):
    """A CPU-only machine with onnxruntime (CPU build) installed: the message must say that
    this onnxruntime has no CUDA provider and how to get it, not "Install onnxruntime"."""
    from ivos.runtime.backends import ort as ort_backend

    if ort_backend.ort_cuda_available():
        pytest.skip("this onnxruntime has the CUDA provider")
    import ivos.runtime.backends as backends

    monkeypatch.setattr(backends, "_gpu_visible", lambda: False)  # as on a CPU-only machine
    for backend in ("auto", "ort"):
        with pytest.raises(ivos.BackendUnavailable) as e:
            ivos.load(tiny_bundle, device="cuda", backend=backend)
        message = str(e.value)
        assert "CUDAExecutionProvider" in message and "onnxruntime-gpu instead of onnxruntime" in message, message
        assert "overwrite each other" in message
        assert "Install onnxruntime (pip install 'ivos[cpu]')" not in message


def test_unknown_bundle_name_lists_the_shipped_bundles():
    shipped = sorted(p.name for p in SHIPPED_MODELS.iterdir() if (p / "model.json").is_file())
    assert shipped, "the package ships bundles"
    with pytest.raises(ivos.ModelError) as e:
        ivos.load("ivos-gpu")
    assert "'ivos-gpu' not found" in str(e.value)
    for name in shipped:
        assert name in str(e.value)
    with pytest.raises(ivos.InvalidInput, match="bundle"):
        ivos.load(None)


def test_corrupt_torch_artifact_raises_model_error(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path, files={"model.pt2": b"PK\x03\x04 truncated zip"})
    with pytest.raises(ivos.ModelError, match=r"artifacts\.torch names model\.pt2"):
        ivos.load(bundle, backend="torch")


@pytest.mark.parametrize("post, fragment", [
    ([1, 2], "'postprocess' must be an object"),
    ({"crf": "yes"}, "postprocess.crf' must be true/false"),
    ({"flip": 1}, "postprocess.flip' must be true/false"),
    ({"crf_params": {"bogus": 1}}, r"postprocess\.crf_params has an unknown key 'bogus'"),
    ({"crf_params": {"sxy_gaussian": -1}}, r"postprocess\.crf_params\['sxy_gaussian'\]"),
    ({"crf_params": {"iterations": 10 ** 9}}, r"postprocess\.crf_params\['iterations'\]"),
])
def test_bad_postprocess_is_refused_at_load(tiny_bundle, tmp_path, post, fragment):
    """Before: accepted at load, then AttributeError/TypeError (or a stalled CRF) at the first click."""
    bundle = _copy(tiny_bundle, tmp_path, lambda card: card.update(postprocess=post))
    with pytest.raises(ivos.ModelError, match=fragment):
        ivos.load(bundle, backend="ort", threads=1)


@pytest.mark.parametrize("edit, fragment", [
    (lambda c: c["inputs"][0].update(shape=[-1, 3, 64, 64]), r"inputs\[0\]\.shape must hold positive ints"),
    (lambda c: c["inputs"][0].pop("dtype"), r"'inputs\[0\]\.dtype' is missing"),
    (lambda c: c["inputs"][1].update(name="image"), r"inputs\[1\]\.name 'image' is used twice"),
    (lambda c: c.update(working_size=[True, 64]), "working_size"),
    (lambda c: c["normalization"].update(std=[0.2, float("nan"), 0.2]), "normalization.std"),
    (lambda c: c["click_encoding"].update(sigma=float("inf")), "click_encoding"),
    (lambda c: c.update(task="segmentation"), "'task' must be one of"),
    (lambda c: c["artifacts"].update(onnx_int8=[1]), r"'artifacts\.onnx_int8' must be a file name"),
])
def test_bad_card_fields_name_the_field(tiny_bundle, tmp_path, edit, fragment):
    bundle = _copy(tiny_bundle, tmp_path, edit)
    with pytest.raises(ivos.ModelError, match=fragment):
        ivos.load(bundle, backend="ort", threads=1)


@pytest.mark.parametrize("name", ["ivos-lite0", "osvos-lite0", "ivos-cpu", "osvos-cpu"])
def test_shipped_bundles_pass_the_load_time_checks(name):
    """Every bundle docs/usage.md names as shipped is there and loads (a missing one fails)."""
    assert (SHIPPED_MODELS / name / "model.json").is_file(), f"{name} is not shipped"
    for precision in ("auto", "fp32"):
        ivos.load(name, backend="ort", threads=1, precision=precision)
