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
