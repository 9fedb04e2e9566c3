"""Adds the torch backend's artifact to an OSVOS bundle: a copy of the bundle with a
``torch.export`` program of its graph (``model.pt2``: frozen backbone + head whose weights
are inputs, the ONNX graph's twin) listed as ``artifacts.torch``. Shipped OSVOS bundles carry
only ONNX; this is for running OSVOS on torch CUDA where ONNX Runtime has no CUDA provider
(``scripts/gpu_check.sh``).

    python -m ivos.export.osvos_torch --weights export/weights/osvos-lite0.pt --bundle osvos-lite0 --out DIR

The program is checked against the bundle's ONNX network (ONNX Runtime, CPU) on one
real-looking input with the parent head, so a weights file that is not the bundle's is
refused. The weights files hold fp16 values (see their model cards) and the shipped ONNX
fp32 ones, so the two agree to about 1% of each output's range (osvos-lite0: 1.1%), not to
float32 precision: the check allows ``MAX_SCALED_DIFF``.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from ivos.runtime.bundle import read_bundle

from .osvos import OsvosGraph, OsvosNet, load_osvos
from .osvos_export import osvos_dynamic_shapes, synthetic_osvos_inputs

log = logging.getLogger("ivos.export")

MAX_SCALED_DIFF = 0.05
"""Largest allowed max |torch - ONNX| / max(1, max |torch|) over the outputs."""


def add_torch_program(bundle_dir: str | Path, net: OsvosNet, out_dir: str | Path) -> Path:
    """Copies the OSVOS bundle ``bundle_dir`` to ``out_dir`` (which must not exist) and adds
    ``model.pt2`` exported from ``net`` (the bundle's network, e.g. ``load_osvos`` of its
    weights file). Returns ``out_dir``.

    Raises:
        FileExistsError: ``out_dir`` exists.
        ValueError: the bundle is not an OSVOS bundle, or ``net`` disagrees
            with the bundle's ONNX network (max scaled difference above MAX_SCALED_DIFF).
    """
    import onnxruntime as ort

    bundle = read_bundle(Path(bundle_dir))
    if bundle.task != "osvos":
        raise ValueError(f"{bundle.path} is a {bundle.task!r} bundle, not an OSVOS bundle")
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} exists: give a new folder")
    graph = OsvosGraph(net.eval()).eval()
    with np.load(bundle.artifact("head_parent")) as z:
        head = {k: z[k] for k in z.files}
    image, prior = synthetic_osvos_inputs(*bundle.working_size, seed=0)
    feeds = {"image": image, "prior": prior, **head}
    names = [s.name for s in bundle.inputs]
    example = tuple(torch.from_numpy(feeds[n]) for n in names)
    with torch.inference_mode():
        want = [t.numpy() for t in graph(*example)]
    got = ort.InferenceSession(str(bundle.artifact("onnx")), providers=["CPUExecutionProvider"]).run(None, feeds)
    diff = max(float(np.abs(w - g).max() / max(1.0, np.abs(w).max())) for w, g in zip(want, got))
    if not diff <= MAX_SCALED_DIFF:
        raise ValueError(f"the network given is not the one of {bundle.path}: max scaled difference {diff:.3g} "
                         f"> {MAX_SCALED_DIFF} against its ONNX graph")
    shutil.copytree(bundle.path, out)
    dynamic = osvos_dynamic_shapes(len(graph.names)) if bundle.has_dynamic_dims else None
    torch.export.save(torch.export.export(graph, example, dynamic_shapes=dynamic), str(out / "model.pt2"))
    card_path = out / "model.json"
    card = json.loads(card_path.read_text())
    card["artifacts"]["torch"] = "model.pt2"
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    read_bundle(out)  # the runtime must accept what we wrote
    log.info("wrote %s (torch vs ONNX max scaled diff %.2e)", out, diff)
    return out


def main(argv: list[str] | None = None) -> None:
    from ivos.runtime.model import resolve_bundle

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", type=Path, required=True, help="the bundle's save_osvos file (export/weights/*.pt)")
    p.add_argument("--bundle", required=True, help="OSVOS bundle folder or shipped name, e.g. osvos-lite0")
    p.add_argument("--out", type=Path, required=True, help="new folder for the bundle with model.pt2")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    add_torch_program(resolve_bundle(args.bundle), load_osvos(args.weights)[0], args.out)


if __name__ == "__main__":
    main()
