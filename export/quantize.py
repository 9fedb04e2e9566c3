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

Weights on 7 bits (``reduce_range``, the default): ONNX Runtime's fast uint8 x int8 kernels on
x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) add pairs of products in 16 bits, which
saturate when both factors are near full scale (255 x 128 x 2 > 32767); with weights in
[-64, 64] they cannot (255 x 64 x 2 < 32767), so no x86 CPU saturates and the network's accuracy
no longer depends on whether the CPU has VNNI (kernels still differ in rounding). On
an AMD EPYC without VNNI that raised the mask IoU with the float network from 0.968 to 0.980
and took back the 0.3 clicks NoC@90 the 8-bit weights lost there
(``benchmarks/results/click_coco.md``, "the int8 network loses accuracy on CPUs without VNNI").
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ivos.evaluation.recording import record_calibration_inputs
from ivos.runtime.bundle import read_bundle

log = logging.getLogger("ivos.export")

INT8_FILE = "model.int8.onnx"
TRUNK_INT8_FILE = "trunk.int8.onnx"
TRUNK_FLOAT_CONVS = 3
"""Leading Convs of an OSVOS trunk kept float: the stem, the first depthwise and the first
projection (half resolution, 16-32 channels). On 19 held-back coco128 calibration inputs
(EfficientNet-Lite0 trunk, 480x864) that cut the stride-8 features' relative error from
0.28 (the stem alone float) to 0.15 and the stride-4 ones' from 0.17 to 0.09, at 45 vs 43 ms
(float: 72 ms); keeping the first 12 float gave 0.11 at 55 ms."""

__all__ = ["INT8_FILE", "TRUNK_INT8_FILE", "float_agreement", "quantize_bundle", "quantize_osvos_trunk",
           "record_calibration_inputs", "trunk_calibration_inputs"]


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


def split_calibration(calibration: list[dict[str, np.ndarray]], held_back: float
                      ) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """(inputs to calibrate on, held-back inputs to measure agreement on): a seeded shuffle,
    so the held-back ones come from every source image. ValueError below 5 inputs."""
    if len(calibration) < 5:
        raise ValueError(f"need at least 5 calibration inputs, got {len(calibration)}")
    order = np.random.default_rng(0).permutation(len(calibration))
    n_fit = max(1, int(round(len(calibration) * (1 - held_back))))
    fit = [calibration[i] for i in order[:n_fit]]
    return fit, [calibration[i] for i in order[n_fit:]] or fit[-1:]


def quantize_graph(float_path: Path, out: Path, calibration: list[dict[str, np.ndarray]], *, keep_last: bool,
                   float_first: int = 1, reduce_range: bool = True) -> None:
    """Writes the int8 (QOperator, per-channel int8 weights, uint8 activations, MinMax) version of
    the ONNX graph ``float_path`` to ``out``, its ranges from running ``calibration`` (graph
    input name -> float32 array). The first ``float_first`` Convs (the first reads the raw
    inputs) stay float, and the last too with ``keep_last`` (a click network's logits).
    ``reduce_range``: weights on 7 bits (see the module docstring); False: the full 8 bits."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calibration)

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))
        convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"]  # topological order
        keep_float = convs[:float_first] + (convs[-1:] if keep_last else [])
        quantize_static(str(prepared), str(out), _Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_float,
                        reduce_range=reduce_range)


def _described(reduce_range: bool, kept_float: str) -> dict:
    """The card's ``method`` (one line) and ``weight_bits`` of a graph quantized by ``quantize_graph``."""
    bits = "7-bit (reduce_range)" if reduce_range else "8-bit"
    return {"method": f"onnxruntime static, QOperator, per-channel {bits} int8 weights, uint8 activations, MinMax; "
                      f"{kept_float} kept float", "weight_bits": 7 if reduce_range else 8}


def quantize_bundle(bundle_dir: str | Path, calibration: list[dict[str, np.ndarray]], *,
                    held_back: float = 0.2, source: str = "", reduce_range: bool = True) -> dict:
    """Writes ``model.int8.onnx`` into the bundle, calibrated on ``calibration`` (minus the
    last ``held_back`` share, kept to measure agreement), weights on 7 bits unless
    ``reduce_range`` is False, and records it in ``model.json`` (``artifacts.onnx_int8`` and a
    ``quantization`` section). Returns that section."""
    bundle = read_bundle(bundle_dir)
    fit, check = split_calibration(calibration, held_back)
    float_path = bundle.artifact("onnx")
    out = bundle.path / INT8_FILE
    quantize_graph(float_path, out, fit, keep_last=True, reduce_range=reduce_range)
    agreement = float_agreement(float_path, out, check)
    section = {"file": INT8_FILE, **_described(reduce_range, "first and last Conv"),
               "calibration": {"source": source, "n_inputs": len(fit)},
               "agreement_with_float": agreement}
    record_int8(bundle.path, "onnx_int8", "quantization", section)
    return section


def record_int8(bundle_dir: Path, artifact: str, section_name: str, section: dict) -> None:
    """Names ``section["file"]`` as ``artifacts.<artifact>`` in the bundle's ``model.json``, keeps
    ``section`` (how it was quantized and how it agrees with float) as ``<section_name>``, and
    checks that the card still reads."""
    import json

    card = json.loads((bundle_dir / "model.json").read_text())
    card["artifacts"][artifact] = section["file"]
    card[section_name] = section
    (bundle_dir / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    read_bundle(bundle_dir)
    log.info("int8: %s, agreement %s", bundle_dir / section["file"], section["agreement_with_float"])


def trunk_calibration_inputs(bundle_dir: str | Path, images: Iterable[np.ndarray], *, crops_per_image: int = 1,
                             seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Inputs of an OSVOS bundle's trunk graph as propagation feeds it: each (H, W, 3) uint8
    image letterboxed to the working size (``OsvosRunner.to_working_rgb``), the whole working
    image and ``crops_per_image`` random windows (sides multiples of the graph's size
    multiple, at least a quarter of each side, as motion-gate crops are), normalised.
    Returns {"image": (1, 3, h, w) float32} per input."""
    from ivos.image.crops import Normaliser
    from ivos.runtime.model import load
    from ivos.video.osvos.runner import OsvosRunner

    model = load(bundle_dir, backend="ort", device="cpu", threads=1, precision="fp32")
    runner = OsvosRunner(model)
    m = runner.size_multiple or 32
    normaliser = Normaliser(model.bundle.mean, model.bundle.std)
    rng = np.random.default_rng(seed)
    inputs = []
    try:
        for image in images:
            working = runner.to_working_rgb(image)
            h, w = working.shape[:2]
            windows = [working]
            for _ in range(crops_per_image):
                ch = m * int(rng.integers(max(1, h // (4 * m)), h // m + 1))
                cw = m * int(rng.integers(max(1, w // (4 * m)), w // m + 1))
                y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                windows.append(working[y0:y0 + ch, x0:x0 + cw])
            for window in windows:
                out = np.empty((1, 3, *window.shape[:2]), np.float32)
                normaliser.into(window, out[0])
                inputs.append({"image": out})
    finally:
        runner.close()
        model.close()
    return inputs


def feature_agreement(float_path: Path, int8_path: Path, inputs: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Per output of the two graphs: mean cosine similarity and mean relative L2 error
    (|int8 - float| / |float|) of the int8 graph's features against the float graph's."""
    import onnxruntime as ort

    ref = ort.InferenceSession(str(float_path), providers=["CPUExecutionProvider"])
    q = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in ref.get_outputs()]
    cos, rel = {n: [] for n in names}, {n: [] for n in names}
    for feed in inputs:
        for name, a, b in zip(names, ref.run(names, feed), q.run(names, feed)):
            a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
            na = np.linalg.norm(a)
            cos[name].append(float(a @ b / max(na * np.linalg.norm(b), 1e-12)))
            rel[name].append(float(np.linalg.norm(a - b) / max(na, 1e-12)))
    out: dict[str, float] = {"n_inputs": len(inputs)}
    for name in names:
        out[f"{name}_cosine_mean"] = float(np.mean(cos[name]))
        out[f"{name}_relative_error_mean"] = float(np.mean(rel[name]))
    return out


def quantize_osvos_trunk(bundle_dir: str | Path, calibration: list[dict[str, np.ndarray]], *,
                         held_back: float = 0.2, source: str = "", reduce_range: bool = True) -> dict:
    """Writes ``trunk.int8.onnx`` (the int8 version of an OSVOS bundle's trunk graph,
    ``quantize_graph``, the first ``TRUNK_FLOAT_CONVS`` Convs float) into the bundle, calibrated on ``calibration``
    (``trunk_calibration_inputs``; the last ``held_back`` share kept to measure agreement;
    weights on 7 bits unless ``reduce_range`` is False),
    and records it in ``model.json``: ``artifacts.trunk_onnx_int8`` and a
    ``trunk_quantization`` section. ONNX Runtime on the CPU then runs it by default
    (``ivos.load(..., precision="fp32")`` keeps the float trunk). Returns that section."""
    bundle = read_bundle(bundle_dir)
    if "trunk_onnx" not in bundle.artifacts:
        raise ValueError(f"{bundle.path}: not an OSVOS bundle with a trunk graph (artifacts.trunk_onnx)")
    fit, check = split_calibration(calibration, held_back)
    float_path = bundle.artifact("trunk_onnx")
    out = bundle.path / TRUNK_INT8_FILE
    quantize_graph(float_path, out, fit, keep_last=False, float_first=TRUNK_FLOAT_CONVS, reduce_range=reduce_range)
    section = {"file": TRUNK_INT8_FILE, **_described(reduce_range, f"the first {TRUNK_FLOAT_CONVS} Convs"),
               "calibration": {"source": source, "n_inputs": len(fit)},
               "agreement_with_float": feature_agreement(float_path, out, check)}
    record_int8(bundle.path, "trunk_onnx_int8", "trunk_quantization", section)
    return section
