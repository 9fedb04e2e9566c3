"""int8 CPU artifact of a click bundle: ONNX Runtime static quantization, calibrated on the
inputs the runtime really feeds the network.

Calibration inputs are recorded, not synthesised (``record_calibration_inputs``, from the
runtime's ``ivos.evaluation.recording``): the float bundle runs the evaluation's simulated user
(``ivos.evaluation.noc``) through ``ivos.ImagePredictor`` on TRAINING images (DAVIS-2016
``train`` by default; never GrabCut, Berkeley or DAVIS dev), and every bound (image, mask,
clicks) input the predictor hands the network is copied. So the ranges cover first-click full
views, zoom-in views and previous-mask inputs alike.

Quantization: QOperator format (QLinearConv, fused with the following ReLU), weights int8
per output channel, activations uint8 per tensor, MinMax ranges. The first convolution (it
reads the raw image, mask and click Gaussians) and the last (the logits) stay float: on
held-back inputs that raised the mask IoU with the float network from 0.971 to 0.992 at
almost no cost in speed (DAVIS train calibration, ivos-cpu). That format runs ~2x faster
than float on ONNX Runtime's CPU provider here (AVX-512 VNNI; see
``benchmarks/results/latency.md``). The card records the logit and mask agreement with the
float network on held-back calibration inputs; accuracy in NoC is measured separately with
``ivos-bench click --precision int8`` before a bundle ships the artifact.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from ivos.evaluation.recording import record_calibration_inputs
from ivos.runtime.bundle import read_bundle

log = logging.getLogger("ivos.export")

INT8_FILE = "model.int8.onnx"

__all__ = ["INT8_FILE", "float_agreement", "quantize_bundle", "record_calibration_inputs"]


def float_agreement(float_path: Path, int8_path: Path, inputs: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Logit max-abs difference and mask IoU (logits > 0) of the int8 network vs the float one."""
    import onnxruntime as ort

    ref = ort.InferenceSession(str(float_path), providers=["CPUExecutionProvider"])
    q = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    diffs, ious = [], []
    for feed in inputs:
        a, b = ref.run(None, feed)[0], q.run(None, feed)[0]
        diffs.append(float(np.abs(a - b).max()))
        ma, mb = a > 0, b > 0
        union = int((ma | mb).sum())
        ious.append(1.0 if union == 0 else float((ma & mb).sum()) / union)
    return {"n_inputs": len(inputs), "logit_max_abs_diff": max(diffs), "logit_max_abs_diff_median": float(np.median(diffs)),
            "mask_iou_mean": float(np.mean(ious)), "mask_iou_min": float(np.min(ious))}


def quantize_bundle(bundle_dir: str | Path, calibration: list[dict[str, np.ndarray]], *,
                    held_back: float = 0.2, source: str = "") -> dict:
    """Writes ``model.int8.onnx`` into the bundle, calibrated on ``calibration`` (minus the
    last ``held_back`` share, kept to measure agreement), and records it in ``model.json``
    (``artifacts.onnx_int8`` and a ``quantization`` section). Returns that section."""
    import json

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    bundle = read_bundle(bundle_dir)
    if len(calibration) < 5:
        raise ValueError(f"need at least 5 calibration inputs, got {len(calibration)}")
    order = np.random.default_rng(0).permutation(len(calibration))  # held-back inputs from every image
    n_fit = max(1, int(round(len(calibration) * (1 - held_back))))
    fit = [calibration[i] for i in order[:n_fit]]
    check = [calibration[i] for i in order[n_fit:]] or fit[-1:]

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(fit)

        def get_next(self):
            return next(self._it, None)

    float_path = bundle.artifact("onnx")
    out = bundle.path / INT8_FILE
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))
        convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"]  # topological order
        keep_float = [convs[0], convs[-1]]
        quantize_static(str(prepared), str(out), _Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_float)
    agreement = float_agreement(float_path, out, check)
    section = {"file": INT8_FILE, "method": "onnxruntime static, QOperator, per-channel int8 weights, uint8 "
               "activations, MinMax; first and last Conv kept float", "calibration": {"source": source, "n_inputs": len(fit)},
               "agreement_with_float": agreement}
    card = json.loads((bundle.path / "model.json").read_text())
    card["artifacts"]["onnx_int8"] = INT8_FILE
    card["quantization"] = section
    (bundle.path / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    read_bundle(bundle.path)
    log.info("int8: %s, agreement %s", out, agreement)
    return section
