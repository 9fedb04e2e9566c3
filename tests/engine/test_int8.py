"""int8 CPU artifact: recorded calibration, quantization into the bundle, and precision
selection at load time (auto picks int8 on ONNX Runtime CPU; fp32 and other backends never)."""
import json
import shutil

import numpy as np
import pytest

import ivos
from ivos.evaluation.datasets import Sample
from ivos.runtime.model import SHIPPED_MODELS


def _samples(n: int, size: int = 96):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        yy, xx = np.mgrid[0:size, 0:size]
        cx, cy, r = rng.uniform(30, 66, 2).tolist() + [rng.uniform(12, 25)]
        gt = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
        image = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        image[gt] += 100
        out.append(Sample(f"s{i}", image, gt, None))
    return out


@pytest.fixture(scope="module")
def int8_bundle(tiny_bundle, tmp_path_factory):
    from ivos.export.quantize import quantize_bundle, record_calibration_inputs

    out = tmp_path_factory.mktemp("int8") / "tiny"
    shutil.copytree(tiny_bundle, out)
    inputs = record_calibration_inputs(out, _samples(4), clicks_per_sample=3, threads=1)
    quantize_bundle(out, inputs, source="synthetic ellipses")
    return out, inputs


def test_calibration_records_every_network_input(int8_bundle):
    _, inputs = int8_bundle
    assert len(inputs) == 12  # 4 samples x 3 clicks, one network run per click
    assert set(inputs[0]) == {"image", "mask", "clicks"}
    assert inputs[0]["clicks"].shape == (1, 1, 64, 64) and inputs[0]["clicks"].dtype == np.float32
    assert not np.array_equal(inputs[0]["clicks"], inputs[1]["clicks"])  # copies, not the live buffer
    assert inputs[0]["mask"].max() == 0  # the first click of a sample has no mask yet
    assert all(set(np.unique(x["mask"])) <= {0.0, 1.0} for x in inputs)  # later: the carried logits > 0


def test_quantized_bundle_card(int8_bundle):
    bundle, _ = int8_bundle
    card = json.loads((bundle / "model.json").read_text())
    assert card["artifacts"]["onnx_int8"] == "model.int8.onnx" and (bundle / "model.int8.onnx").is_file()
    q = card["quantization"]
    assert q["calibration"] == {"source": "synthetic ellipses", "n_inputs": 10}  # 12 minus 20% held back
    assert 0.0 <= q["agreement_with_float"]["mask_iou_min"] <= q["agreement_with_float"]["mask_iou_mean"] <= 1.0


def _conv_weight_extremes(onnx_path) -> tuple[int, int]:
    """(min, max) over the int8 weights of every QLinearConv in the graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [weights[n.input[3]] for n in graph.node if n.op_type == "QLinearConv"]
    assert convs and all(w.dtype == np.int8 for w in convs)
    return min(int(w.min()) for w in convs), max(int(w.max()) for w in convs)


def test_weights_on_7_bits_unless_asked_for_8(int8_bundle, tmp_path):
    """7-bit weights by default, so that uint8 x int8 pair sums fit 16 bits on CPUs without VNNI
    (255 x 64 x 2 < 32767); --no-reduce-range gives the full 8 bits."""
    from ivos.export.quantize import quantize_bundle

    bundle, inputs = int8_bundle
    low, high = _conv_weight_extremes(bundle / "model.int8.onnx")
    assert -64 <= low and high <= 64 and max(-low, high) == 64  # per-channel symmetric: each channel's extreme at 64
    assert "7-bit" in json.loads((bundle / "model.json").read_text())["quantization"]["method"]
    full = tmp_path / "full"
    shutil.copytree(bundle, full)
    quantize_bundle(full, inputs, source="synthetic ellipses", reduce_range=False)
    low, high = _conv_weight_extremes(full / "model.int8.onnx")
    assert max(-low, high) == 127
    assert "8-bit" in json.loads((full / "model.json").read_text())["quantization"]["method"]
    assert json.loads((full / "model.json").read_text())["quantization"]["weight_bits"] == 8


def test_8_bit_weights_on_a_cpu_without_vnni_warn_once(int8_bundle, tmp_path, monkeypatch, caplog):
    from ivos.runtime import backends, cpu_features

    bundle, _ = int8_bundle
    full = tmp_path / "full"
    shutil.copytree(bundle, full)
    card = json.loads((full / "model.json").read_text())
    del card["quantization"]["weight_bits"]  # a bundle quantized before the field: 8-bit weights
    (full / "model.json").write_text(json.dumps(card))
    monkeypatch.setattr(cpu_features, "int8_kernels_saturate", lambda: True)
    monkeypatch.setattr(backends, "_warned_saturation", set())
    monkeypatch.delenv("IVOS_ORT_EXACT_INT8", raising=False)
    with caplog.at_level("WARNING", logger="ivos"):
        ivos.load(bundle, threads=1)  # 7-bit weights: nothing to say
        assert not caplog.records
        ivos.load(full, threads=1)
        ivos.load(full, threads=1)
    assert len(caplog.records) == 1 and "8-bit weights" in caplog.text and "ivos-export int8" in caplog.text
    monkeypatch.setattr(cpu_features, "int8_kernels_saturate", lambda: False)
    monkeypatch.setattr(backends, "_warned_saturation", set())
    caplog.clear()
    ivos.load(full, threads=1)  # a CPU with VNNI: exact either way
    assert not caplog.records


def test_int8_kernels_bench_rows(int8_bundle):
    from ivos.bench.int8_kernels import compare

    bundle, inputs = int8_bundle
    rows = compare([bundle], inputs[:3], rounds=1)
    assert [r["config"] for r in rows] == ["fp32", "int8 fast kernels", "int8 exact kernels"]
    assert rows[0]["mask_iou_vs_float_mean"] == 1.0 and rows[0]["network_ms"]["n"] == 3
    assert all(0.0 <= r["mask_iou_vs_float_min"] <= r["mask_iou_vs_float_mean"] <= 1.0 for r in rows)


def test_precision_selection(int8_bundle, tiny_bundle):
    bundle, _ = int8_bundle
    auto = ivos.load(bundle, threads=1)
    assert auto.precision == "int8" and auto.backend == "onnxruntime:CPUExecutionProvider:int8"
    assert ivos.load(bundle, precision="fp32", threads=1).precision == "fp32"
    assert ivos.load(bundle, backend="torch", threads=1).precision == "fp32"
    assert ivos.load(tiny_bundle, threads=1).precision == "fp32"  # no int8 artifact: the float network


def test_int8_predictor_clicks(int8_bundle):
    bundle, _ = int8_bundle
    predictor = ivos.ImagePredictor(ivos.load(bundle, precision="int8", threads=1), crf=False)
    sample = _samples(1)[0]
    predictor.set_image(sample.image)
    result = predictor.add_click(48, 48, positive=True)
    assert result.mask.shape == (96, 96) and result.mask[48, 48] == 1  # clicked pixel clamped
    assert result.backend.endswith(":int8")


def test_int8_bad_requests(int8_bundle, tiny_bundle):
    bundle, _ = int8_bundle
    with pytest.raises(ivos.ModelError, match="artifacts.onnx_int8"):
        ivos.load(tiny_bundle, precision="int8")
    with pytest.raises(ivos.BackendUnavailable, match="int8"):
        ivos.load(bundle, backend="torch", precision="int8")
    with pytest.raises(ivos.InvalidInput, match="precision"):
        ivos.load(bundle, precision="fp16")


SHIPPED_INT8 = SHIPPED_MODELS / "ivos-cpu" / "model.int8.onnx"

AGREEMENT_FLOOR = 0.94
"""Lower bound on the mean int8-vs-float mask IoU per network run. int8 kernels differ by
instruction set, so the agreement does too; measured on the inputs below
(``benchmarks/results/int8_isa.md``, ``python -m ivos.bench.int8_isa``): 0.994 with AVX-512
VNNI (AMD EPYC, native) and 0.982 with AVX2 (qemu -cpu Haswell, which reproduces the 0.969 an
AVX2-only AMD EPYC gave on the earlier frames). The floor sits 0.04 below the lowest."""


def _davis_train_samples(n: int):
    from ivos.bench.int8_isa import davis_train_samples

    samples = davis_train_samples(n)
    if not samples:
        pytest.skip("DAVIS2016 train split not found under the data root (../shared/datasets)")
    return samples


@pytest.mark.skipif(not SHIPPED_INT8.is_file(), reason="no shipped int8 network")
def test_shipped_int8_agrees_with_float_on_real_clicks():
    """On inputs of real click sessions the shipped int8 network's masks match the float
    network's, within the spread measured across instruction sets (``AGREEMENT_FLOOR``).
    (Synthetic sinusoid textures are outside the calibration range: no measure of it.)"""
    from ivos.export.quantize import float_agreement, record_calibration_inputs

    bundle = SHIPPED_MODELS / "ivos-cpu"
    inputs = record_calibration_inputs(bundle, _davis_train_samples(3), clicks_per_sample=3, threads=1)
    agreement = float_agreement(bundle / "model.onnx", bundle / "model.int8.onnx", inputs)
    assert agreement["mask_iou_mean"] > AGREEMENT_FLOOR, agreement
