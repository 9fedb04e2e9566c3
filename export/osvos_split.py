"""Splits an OSVOS bundle's graph into its trunk and its head (two more artifacts).

Why: the memory mode of propagation (``ivos.video.propagation.MemoryRun``) needs the trunk's
features of a frame BEFORE the head runs (the frame's keys read the memory, and the readout
is part of the head's prior), and several objects share one trunk pass per frame while each
runs its own head. The full graph (``model.onnx``) stays for the other modes and for
fine-tuning. The parts are cut out of ``model.onnx`` itself (``onnx.utils.Extractor``), so
The trunk is cut out of ``model.onnx`` itself (``onnx.utils.Extractor``: the same nodes and
weights). The head is exported from ``ivos.video.osvos.head.head_forward``, the function the full
graph was exported from (its weights are graph inputs, so the graph holds no weights). Trunk
+ head are checked against the full graph with ONNX Runtime on random frames and heads
(``SPLIT_TOLERANCE``, the export's parity bound; also ``tests/test_osvos_split.py``).

    trunk.onnx: image (1, 3, H, W) -> low (1, C_low, H/4, W/4), high (1, C_high, H/8, W/8)
    head.onnx:  low, high, prior (1, 1, H, W), head.* -> logits (1, 1, H/4, W/4)

The card gains ``artifacts.trunk_onnx`` / ``artifacts.head_onnx`` and ``osvos.parts`` (each
part's inputs and outputs, in the card's tensor format), read by ``ivos.runtime.bundle.osvos_part``.

Usage::

    python -m ivos.export.osvos_split engine/models/osvos-lite0
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SPLIT_TOLERANCE = 1e-4
"""Largest |logit difference| / (1 + |logit|) allowed between trunk + head and the full graph."""


class HeadGraph:
    """Export wrapper: ``forward(low, high, prior, *head weights) -> logits`` (built lazily: torch)."""

    @staticmethod
    def build(names: list[str]):
        import torch.nn.functional as F
        from torch import nn

        from ivos.video.osvos.head import head_forward

        class _Head(nn.Module):
            def forward(self, low, high, prior, *weights):
                return head_forward(dict(zip(names, weights)), low, high, F.avg_pool2d(prior, 4))

        return _Head().eval()


def split_bundle(folder: Path, *, checks: int = 3) -> dict:
    """Writes ``trunk.onnx`` and ``head.onnx`` next to ``model.onnx`` in the bundle
    ``folder``, checks them against it, and records them in its ``model.json``. Returns the
    card's ``osvos.parts``. RuntimeError when trunk + head disagree with the full graph."""
    import onnx
    import torch
    from onnx.utils import Extractor

    from .onnx_export import export_onnx
    from .osvos_export import SIZE_MULTIPLE

    card_path = folder / "model.json"
    card = json.loads(card_path.read_text())
    specs = {t["name"]: t for t in card["inputs"] + card["outputs"]}
    names = list(card["osvos"]["head_inputs"])
    full = folder / card["artifacts"]["onnx"]
    trunk = Extractor(onnx.load(str(full))).extract_model(["image"], ["low", "high"])
    known = {i.name for i in trunk.graph.input} | {t.name for t in trunk.graph.initializer}
    known |= {o for n in trunk.graph.node for o in n.output}
    missing = sorted({i for n in trunk.graph.node for i in n.input if i and i not in known})
    if missing:
        raise RuntimeError(f"{folder}: the trunk reads {missing}, not the image only (its backbone takes the "
                           "prior): only bundles whose trunk ignores the prior (osvos-lite0) can be split")
    onnx.save(trunk, str(folder / "trunk.onnx"))
    h, w = card["working_size"]
    c_low, c_high = int(card["osvos"]["low_channels"]), int(card["osvos"]["high_channels"])
    parent = dict(np.load(folder / card["artifacts"]["head_parent"]))
    example = (torch.zeros(1, c_low, h // 4, w // 4), torch.zeros(1, c_high, h // 8, w // 8), torch.zeros(1, 1, h, w),
               *(torch.from_numpy(parent[n]) for n in names))
    rows = torch.export.Dim("rows32", min=2, max=256)
    cols = torch.export.Dim("cols32", min=2, max=256)
    per = SIZE_MULTIPLE
    dynamic = {"low": {2: per // 4 * rows, 3: per // 4 * cols}, "high": {2: per // 8 * rows, 3: per // 8 * cols},
               "prior": {2: per * rows, 3: per * cols}, "weights": (None,) * len(names)}
    export_onnx(HeadGraph.build(names), example, folder / "head.onnx", ["low", "high", "prior", *names], ["logits"],
                dynamic_shapes=dynamic)
    card["artifacts"]["trunk_onnx"], card["artifacts"]["head_onnx"] = "trunk.onnx", "head.onnx"
    parts = {"trunk": {"inputs": [specs["image"]], "outputs": [specs["low"], specs["high"]]},
             "head": {"inputs": [specs[n] for n in ("low", "high", "prior", *names)], "outputs": [specs["logits"]]}}
    diff = split_parity(folder, card, checks)
    if not diff <= SPLIT_TOLERANCE:
        raise RuntimeError(f"{folder}: trunk + head differ from the full graph by {diff:.3g} (> {SPLIT_TOLERANCE})")
    card["osvos"]["parts"] = parts
    card["osvos"]["split_parity_max_scaled_diff"] = float(diff)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return parts


def split_parity(folder: Path, card: dict, checks: int) -> float:
    """Max |trunk + head logits - full graph logits| / (1 + |full|) over ``checks`` random
    frames, priors and perturbed heads at the working size and at smaller crops (ORT, CPU)."""
    import onnxruntime as ort

    def session(name):
        return ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])

    full, trunk, head = session(card["artifacts"]["onnx"]), session("trunk.onnx"), session("head.onnx")
    parent = dict(np.load(folder / card["artifacts"]["head_parent"]))
    rng = np.random.default_rng(0)
    h, w = card["working_size"]
    worst = 0.0
    for i in range(checks):
        size = (h, w) if i % 2 == 0 else (max(64, h // 2 // 32 * 32), max(64, w // 2 // 32 * 32))
        image = rng.normal(0, 1, (1, 3, *size)).astype(np.float32)
        prior = (rng.random((1, 1, *size)) < 0.3).astype(np.float32) * (i % 3 != 0)
        weights = {k: (v + rng.normal(0, 0.05 * i, v.shape)).astype(np.float32) for k, v in parent.items()}
        ref = full.run(["logits"], {"image": image, "prior": prior, **weights})[0]
        low, high = trunk.run(["low", "high"], {"image": image})
        got = head.run(["logits"], {"low": low, "high": high, "prior": prior, **weights})[0]
        worst = max(worst, float(np.max(np.abs(got - ref) / (1.0 + np.abs(ref)))))
    return worst
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("bundle", type=Path, help="an OSVOS bundle folder (task 'osvos')")
    args = p.parse_args(argv)
    parts = split_bundle(args.bundle)
    print(json.dumps({k: [t["name"] for t in v["inputs"]] for k, v in parts.items()}))
    print("trunk + head vs full graph, max scaled logit difference:",
          json.loads((args.bundle / "model.json").read_text())["osvos"]["split_parity_max_scaled_diff"])


if __name__ == "__main__":
    main()
