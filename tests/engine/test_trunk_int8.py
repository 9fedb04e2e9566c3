"""An OSVOS bundle's int8 trunk (``ivos-export int8`` on an OSVOS bundle): calibration inputs
as propagation feeds the trunk, quantization into the bundle, and which trunk runs (auto: the
int8 one on ONNX Runtime's CPU provider; precision="fp32": the float one)."""
import json
import shutil

import numpy as np
import pytest

import ivos
from ivos.runtime.model import SHIPPED_MODELS
from ivos.video.osvos.runner import OsvosRunner

pytest.importorskip("onnxruntime.quantization", reason="quantization needs onnxruntime")


def _photos(n: int, height: int = 120, width: int = 200):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for _ in range(n):
        image = (rng.integers(0, 60, (height, width, 3)) + np.linspace(0, 120, width)[None, :, None]).astype(np.uint8)
        cx, cy = rng.uniform(40, width - 40), rng.uniform(30, height - 30)
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < 25 ** 2] = rng.integers(0, 255, 3, dtype=np.uint8)
        out.append(image)
    return out


@pytest.fixture(scope="module")
def int8_trunk_bundle(tmp_path_factory):
    from ivos.export.quantize import quantize_osvos_trunk, trunk_calibration_inputs

    out = tmp_path_factory.mktemp("trunk_int8") / "osvos"
    shutil.copytree(SHIPPED_MODELS / "osvos-lite0", out, ignore=shutil.ignore_patterns("trunk.int8.onnx"))
    card = json.loads((out / "model.json").read_text())
    card["artifacts"].pop("trunk_onnx_int8", None)
    card.pop("trunk_quantization", None)
    (out / "model.json").write_text(json.dumps(card))
    inputs = trunk_calibration_inputs(out, _photos(4), crops_per_image=1)
    quantize_osvos_trunk(out, inputs, source="synthetic photos")
    return out, inputs


def test_calibration_inputs_are_working_images_and_windows(int8_trunk_bundle):
    _, inputs = int8_trunk_bundle
    assert len(inputs) == 8  # each photo whole and one window
    whole, window = inputs[0]["image"], inputs[1]["image"]
    model = ivos.load(SHIPPED_MODELS / "osvos-lite0", backend="ort", threads=1, precision="fp32")
    assert whole.shape == (1, 3, *model.bundle.working_size) and whole.dtype == np.float32
    assert window.shape[2] % 32 == 0 and window.shape[3] % 32 == 0
    assert window.shape[2] <= whole.shape[2] and window.shape[3] <= whole.shape[3]
    model.close()


def test_card_names_the_int8_trunk(int8_trunk_bundle):
    bundle, _ = int8_trunk_bundle
    card = json.loads((bundle / "model.json").read_text())
    assert card["artifacts"]["trunk_onnx_int8"] == "trunk.int8.onnx" and (bundle / "trunk.int8.onnx").is_file()
    q = card["trunk_quantization"]
    assert q["calibration"] == {"source": "synthetic photos", "n_inputs": 6}  # 8 minus 20% held back
    agreement = q["agreement_with_float"]
    assert agreement["n_inputs"] == 2
    for name in ("low", "high"):
        assert -1.0 <= agreement[f"{name}_cosine_mean"] <= 1.0 and agreement[f"{name}_relative_error_mean"] >= 0


def test_auto_runs_the_int8_trunk_and_fp32_the_float_one(int8_trunk_bundle):
    bundle, _ = int8_trunk_bundle
    image = _photos(1, 480, 864)[0]
    features = {}
    for precision in ("auto", "fp32"):
        model = ivos.load(bundle, backend="ort", device="cpu", threads=1, precision=precision)
        assert model.part("head").precision == "fp32"  # the head is float either way
        assert model.part("trunk").precision == ("int8" if precision == "auto" else "fp32")
        runner = OsvosRunner(model)
        features[precision] = runner.trunk(runner.to_working_rgb(image), (0, 0, 256, 192))
        runner.close()
        model.close()
    q, f = features["auto"], features["fp32"]
    assert q.high.shape == f.high.shape == (1, 472, 24, 32) and q.crop == f.crop
    # int8 features differ from the float ones, but not in kind (the bound is loose on purpose:
    # int8 arithmetic differs between CPUs)
    cosine = float(q.high.ravel() @ f.high.ravel() / (np.linalg.norm(q.high) * np.linalg.norm(f.high)))
    assert 0.8 < cosine < 1.0
