"""PyTorch network -> model bundle: ``model.onnx`` (fixed I/O names, static shapes at the
working resolution), ``model.pt2`` (``torch.export`` program, the torch backend's input) and
``model.json`` (the model card, see ``ivos.runtime.bundle``), verified against torch right after the
export on real-looking inputs."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivos.runtime.bundle import FORMAT, FORMAT_VERSION, read_bundle

log = logging.getLogger("ivos.export")

OPSET = 18
PARITY_TOLERANCE = 1e-4
"""Largest max-abs logit difference between ONNX Runtime and torch accepted at export."""


def synthetic_click_inputs(size: int, channels: int, seed: int, *, sigma: float) -> tuple[np.ndarray, ...]:
    """Real-looking inputs for parity checks, no data set needed: a smooth random
    background with an elliptical textured object (normalised RGB), a jittered copy of the
    object's mask, and clicks inside/outside it rendered with the runtime's encoding.

    Returns (image (1,3,S,S), mask (1,1,S,S), clicks (1,C,S,S)) float32.
    """
    import ivos
    from ivos.evaluation.distmap import render_distance_maps

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.zeros((3, size, size), np.float32)
    for c in range(3):
        for _ in range(4):
            fx, fy, phase = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 6.3)]
            image[c] += np.sin(2 * np.pi * (fx * xx + fy * yy) + phase).astype(np.float32)
    cx, cy, rx, ry = rng.uniform(0.3, 0.7, 2).tolist() + rng.uniform(0.1, 0.3, 2).tolist()
    obj = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
    image[:, obj] += rng.normal(0, 1, 3)[:, None].astype(np.float32) + rng.normal(0, 0.3, (3, int(obj.sum())))
    jitter = ((xx - cx - rng.normal(0, 0.02)) / rx) ** 2 + ((yy - cy) / (ry * rng.uniform(0.8, 1.2))) ** 2 < 1
    inside = np.argwhere(obj)[rng.integers(0, int(obj.sum()), 3)][:, ::-1]
    outside = np.argwhere(~obj)[rng.integers(0, int((~obj).sum()), 2)][:, ::-1]
    clicks = np.concatenate([np.c_[inside, np.ones(3)], np.c_[outside, np.zeros(2)]]).astype(np.float32)
    if channels == 2:
        encoded = render_distance_maps(size, size, clicks)
    else:
        encoded = ivos.render_clicks(size, size, clicks, sigma=sigma)[None]
    return image[None], jitter[None, None].astype(np.float32), encoded[None]


def export_onnx(model: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path,
                 input_names: list[str], output_names: list[str], *, dynamic_shapes: Any = None) -> None:
    """``dynamic_shapes``: ``torch.export``'s, by forward argument name (None: static)."""
    if dynamic_shapes is not None:
        # torch.onnx.export(dynamic_shapes=...) turns a *args tuple's spec into a list, which
        # torch.export then rejects; exporting the program first keeps the caller's structure
        model = torch.export.export(model, example, dynamic_shapes=dynamic_shapes)
    torch.onnx.export(model, example, str(path), input_names=input_names, output_names=output_names,
                      opset_version=OPSET, dynamo=True, external_data=False, verbose=False)


def verify_onnx(model: torch.nn.Module, onnx_path: Path, inputs: list[tuple[np.ndarray, ...]],
                input_names: list[str]) -> float:
    """Max abs difference of the first output, ONNX Runtime (CPU) vs torch, over ``inputs``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.inference_mode():
        for arrays in inputs:
            ref = model(*(torch.from_numpy(a) for a in arrays))
            got = session.run(None, dict(zip(input_names, arrays)))[0]
            worst = max(worst, float(np.abs(ref.numpy() - got).max()))
    return worst


def export_click_bundle(model: torch.nn.Module, out_dir: str | Path, *, name: str, version: str,
                        click_encoding: str, click_sigma: float, click_channels: int, working_size: int,
                        mean: tuple[float, ...], std: tuple[float, ...], card_extra: dict[str, Any] | None = None,
                        postprocess: dict[str, Any] | None = None, n_checks: int = 4) -> dict[str, Any]:
    """Exports a click-refinement network (``forward(image, mask, clicks) -> logits``) as a
    bundle in ``out_dir``; returns the model card. Raises RuntimeError when ONNX Runtime and
    torch disagree by more than PARITY_TOLERANCE."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    s = working_size
    names = ["image", "mask", "clicks"]
    checks = [synthetic_click_inputs(s, click_channels, seed, sigma=click_sigma) for seed in range(n_checks)]
    example = tuple(torch.from_numpy(a) for a in checks[0])
    t0 = time.perf_counter()
    export_onnx(model, example, out / "model.onnx", names, ["logits"])
    torch.export.save(torch.export.export(model, example), str(out / "model.pt2"))
    export_s = time.perf_counter() - t0
    diff = verify_onnx(model, out / "model.onnx", checks, names)
    log.info("exported %s in %.1f s; ORT vs torch max abs diff %.2e", name, export_s, diff)
    if not diff <= PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export of {name} disagrees with torch: max abs logit diff {diff:.3g} "
                           f"> {PARITY_TOLERANCE}")
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "task": "click-refinement",
        "inputs": [
            {"name": "image", "shape": [1, 3, s, s], "dtype": "float32"},
            {"name": "mask", "shape": [1, 1, s, s], "dtype": "float32"},
            {"name": "clicks", "shape": [1, click_channels, s, s], "dtype": "float32"},
        ],
        "outputs": [{"name": "logits", "shape": [1, 1, s, s], "dtype": "float32"}],
        "normalization": {"mean": list(mean), "std": list(std), "note": "RGB/255, then (x - mean) / std"},
        "working_size": [s, s],
        "click_encoding": {"kind": click_encoding, "sigma": click_sigma, "coordinates": "x=column, y=row, "
                           "pixel centres at integers, in working pixels"},
        "artifacts": {"onnx": "model.onnx", "torch": "model.pt2"},
        "postprocess": postprocess or {"crf": False, "crf_params": {}},
        "export": {"torch_version": torch.__version__, "opset": OPSET, "parity_max_abs_diff": diff,
                   "parity_inputs": f"{n_checks} synthetic real-looking inputs", "export_seconds": round(export_s, 2)},
        **(card_extra or {}),
    }
    (out / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    read_bundle(out)  # the runtime must accept what we wrote
    return card
