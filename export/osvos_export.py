"""OsvosNet -> OSVOS model bundle, exported ONCE: ``model.onnx`` (frozen backbone + head with
the head's weights as graph inputs, see ``ivos.export.osvos``), ``head_parent.npz`` (the
parent head's weights, numpy: the runtime feeds them before any fine-tuning) and
``model.json`` (the model card), verified against torch right after the export on
real-looking inputs with the parent head AND a perturbed head (the perturbed head proves
the weights really are inputs, not constants folded into the graph)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivos.runtime.bundle import FORMAT, FORMAT_VERSION, read_bundle
from ivos.video.osvos.head import HEAD_VERSION, head_param_shapes

from .onnx_export import OPSET, PARITY_TOLERANCE, export_onnx, synthetic_click_inputs
from .osvos import OsvosGraph, OsvosNet

log = logging.getLogger("ivos.export")

FRAME_CRF_PARAMS = {"compat_bilateral": 3.0, "srgb": 5.0, "sxy_bilateral": 40.0}
"""The dense-CRF keywords an OSVOS bundle's card gives propagated frames (the rest: ``ivos.dense_crf``'s
defaults): the click CRF's setting chosen on held-aside DAVIS train frames
(benchmarks/results/click_crf_sweep.md); on the five held-aside train sequences it gives mean J 0.810
vs 0.774 with dense_crf's defaults and 0.724 without a CRF (benchmarks/results/video_ablations.md)."""


def _parity(graph: OsvosGraph, onnx_path: Path, feeds: list[list[np.ndarray]], names: list[str]) -> float:
    """Worst difference over all three outputs, ONNX Runtime (CPU) vs torch: max abs
    difference divided by max(1, the output's max magnitude), so deep features with values
    in the tens (EfficientNet's stride-32 maps) are held to float32's relative precision."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.inference_mode():
        for arrays in feeds:
            ref = graph(*(torch.from_numpy(a) for a in arrays))
            got = session.run(None, dict(zip(names, arrays)))
            worst = max(worst, *(float(np.abs(r.numpy() - g).max() / max(1.0, np.abs(r.numpy()).max()))
                                 for r, g in zip(ref, got)))
    return worst


def synthetic_osvos_inputs(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A real-looking normalised image (1, 3, h, w) and prior mask (1, 1, h, w): the click
    export's synthetic square scene, resized to (h, w)."""
    image, mask, _ = synthetic_click_inputs(max(h, w), 1, seed, sigma=5.0)
    t = torch.nn.functional.interpolate(torch.from_numpy(image), size=(h, w), mode="bilinear", align_corners=False)
    m = torch.nn.functional.interpolate(torch.from_numpy(mask), size=(h, w), mode="nearest")
    return t.numpy(), m.numpy()


SIZE_MULTIPLE = 32
"""The graph's height and width are dynamic multiples of this (the backbone's coarsest
stride): the runtime may run it on a crop of the working image (``ivos.video.osvos.runner``)."""

DYNAMIC_DIMS = {"image": ("height", "width"), "prior": ("height", "width"), "logits": ("height/4", "width/4"),
                "low": ("height/4", "width/4"), "high": ("height/8", "width/8")}
"""The card's names of the spatial dims of each graph input/output (``ivos.runtime.bundle.osvos_dims``
gives their sizes for an input size)."""


def osvos_dynamic_shapes(n_head: int) -> dict:
    """``torch.export`` dynamic shapes of ``OsvosGraph.forward(image, prior, *weights)``: image
    and prior (1, C, 32 a, 32 b) with a, b >= 2; the head's weights static."""
    rows = torch.export.Dim("rows32", min=2, max=256)
    cols = torch.export.Dim("cols32", min=2, max=256)
    spatial = {2: SIZE_MULTIPLE * rows, 3: SIZE_MULTIPLE * cols}
    return {"image": spatial, "prior": spatial, "weights": (None,) * n_head}


def export_osvos_bundle(net: OsvosNet, out_dir: str | Path, *, version: str, mean: tuple[float, ...],
                        std: tuple[float, ...], card_extra: dict[str, Any] | None = None,
                        n_checks: int = 2) -> dict[str, Any]:
    """Exports ``net`` (its current head = the parent head) as a bundle in ``out_dir``;
    returns the model card. The graph's height and width are dynamic (multiples of
    SIZE_MULTIPLE; the card's ``working_size`` is the full frame's). RuntimeError when ONNX
    Runtime and torch disagree by more than PARITY_TOLERANCE (scaled by the output magnitude,
    see ``_parity``), at the working size and on a smaller crop."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    h, w = net.config.working_size
    graph = OsvosGraph(net).eval()
    parent = net.head_numpy()
    names = ["image", "prior", *graph.names]
    rng = np.random.default_rng(0)
    feeds = []
    for seed in range(n_checks):
        # every other check on a crop-sized input: the dynamic dims must work below the working size
        size = (h, w) if seed % 2 == 0 else (max(64, h // 2 // 32 * 32), max(64, w // 2 // 32 * 32))
        image, prior = synthetic_osvos_inputs(*size, seed)
        head = parent if seed % 2 == 0 else {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32)
                                             for k, v in parent.items()}
        feeds.append([image, prior * (seed % 2), *(head[k] for k in graph.names)])
    example = tuple(torch.from_numpy(a) for a in feeds[0])
    t0 = time.perf_counter()
    export_onnx(graph, example, out / "model.onnx", names, ["logits", "low", "high"],
                dynamic_shapes=osvos_dynamic_shapes(len(graph.names)))
    export_s = time.perf_counter() - t0
    diff = _parity(graph, out / "model.onnx", feeds, names)
    log.info("exported %s in %.1f s; ORT vs torch max scaled diff %.2e", net.config.name, export_s, diff)
    if not diff <= PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export of {net.config.name} disagrees with torch: max scaled diff {diff:.3g} "
                           f"> {PARITY_TOLERANCE}")
    np.savez(out / "head_parent.npz", **parent)
    lc, hc = net.backbone.low_channels, net.backbone.high_channels
    shapes = head_param_shapes(lc, hc)
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": net.config.name,
        "version": version,
        "task": "osvos",
        "inputs": [{"name": "image", "shape": [1, 3, *DYNAMIC_DIMS["image"]], "dtype": "float32"},
                   {"name": "prior", "shape": [1, 1, *DYNAMIC_DIMS["prior"]], "dtype": "float32"}]
                  + [{"name": k, "shape": list(s), "dtype": "float32"} for k, s in shapes.items()],
        "outputs": [{"name": "logits", "shape": [1, 1, *DYNAMIC_DIMS["logits"]], "dtype": "float32"},
                    {"name": "low", "shape": [1, lc, *DYNAMIC_DIMS["low"]], "dtype": "float32"},
                    {"name": "high", "shape": [1, hc, *DYNAMIC_DIMS["high"]], "dtype": "float32"}],
        "normalization": {"mean": list(mean), "std": list(std), "note": "RGB/255, then (x - mean) / std"},
        "working_size": [h, w],
        "artifacts": {"onnx": "model.onnx", "head_parent": "head_parent.npz"},
        "osvos": {"head_version": HEAD_VERSION, "low_channels": lc, "high_channels": hc,
                  "head_inputs": list(shapes), "size_multiple": SIZE_MULTIPLE,
                  "note": "head.* inputs are the head's weights: feed fine-tuned weights at run time; logits "
                  "are at stride 4 of the input; height and width are any multiples of size_multiple up to "
                  "the working size (the runtime may run a crop of the letterboxed frame)"},
        "postprocess": {"crf": True, "crf_params": dict(FRAME_CRF_PARAMS)},
        "export": {"torch_version": torch.__version__, "opset": OPSET, "parity_max_abs_diff": diff,
                   "parity_inputs": f"{n_checks} synthetic inputs, parent and perturbed heads",
                   "export_seconds": round(export_s, 2)},
        **(card_extra or {}),
    }
    (out / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    read_bundle(out)  # the runtime must accept what we wrote
    return card


def main(argv: list[str] | None = None) -> None:
    """Re-exports an OSVOS weights file as a bundle (e.g. at another working size):
    ``python -m ivos.export.osvos_export --weights export/weights/osvos-cpu.pt --out DIR [--size H W]``."""
    import argparse
    import dataclasses

    from ..network_io import IMAGENET_MEAN, IMAGENET_STD
    from .osvos import load_osvos

    p = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="working size, multiples of 32")
    p.add_argument("--version", default="0.1.0")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    net, meta = load_osvos(args.weights)
    if args.size:
        if any(s % 32 for s in args.size):
            raise SystemExit(f"--size must be multiples of 32, got {args.size}")
        net.config = dataclasses.replace(net.config, working_size=tuple(args.size))
    export_osvos_bundle(net, args.out, version=args.version, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                        card_extra={"model_card": {"training": meta}})


if __name__ == "__main__":
    main()
