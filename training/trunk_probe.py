"""Click bundles on each EfficientNet-Lite trunk, to time before training one.

A trunk's latency does not depend on what its head learnt, so an ImageNet trunk with the
``ivos-lite0`` head (untrained; the click branch given small random weights so that the
clicks reach the trunk) exported like the shipped bundle (flip, the shipped CRF card, int8
calibrated on DAVIS train) costs what a trained one would:

    python -m training.trunk_probe --out /tmp/trunk-probe
    ivos-bench latency --model engine/models/ivos-lite0 /tmp/trunk-probe/lite0 /tmp/trunk-probe/lite1 \\
        /tmp/trunk-probe/lite2 --backends ort-int8 --threads 1

The masks of these bundles mean nothing: latency only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

log = logging.getLogger("training.trunk_probe")

SHIPPED_CARD = Path(__file__).resolve().parents[1] / "engine" / "models" / "ivos-lite0" / "model.json"
"""Where the probe bundles take their postprocess card (CRF parameters, flip, gate) from."""


def make_probe(variant: int, out: Path, postprocess: dict) -> Path:
    """Exports the ``efficientnet-lite{variant}`` probe bundle (with its int8 network) to
    ``out/lite{variant}``; returns that folder."""
    import torch

    from ivos.export.checkpoint import save_click_model
    from ivos.export.cli import main as export
    from ivos.export.models import MODEL_CONFIGS, build_model

    torch.manual_seed(variant)
    config = dataclasses.replace(MODEL_CONFIGS["ivos-lite0"], name=f"probe-lite{variant}",
                                 encoder=f"efficientnet-lite{variant}")
    model = build_model(config)
    model.load_pretrained_trunk()
    torch.nn.init.normal_(model.branch.last.weight, std=0.01)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"lite{variant}.pt"
    save_click_model(weights, model, {"note": "latency probe: ImageNet trunk, untrained head"})
    bundle = out / f"lite{variant}"
    flags = ["--crf"] if postprocess.get("crf") else []
    flags += [f"--crf-param={k}={v}" for k, v in postprocess.get("crf_params", {}).items()]
    flags += ["--flip"] if postprocess.get("flip") else []
    flags += [f"--{k.replace('_', '-')}={postprocess[k]}" for k in ("crf_min_area", "refocus_below", "refocus_min_side")
              if k in postprocess]
    if export(["click", str(weights), "--out", str(bundle), *flags]) or export(["int8", str(bundle)]):
        raise RuntimeError(f"exporting the probe {bundle} failed")
    log.info("probe %s: %d parameters", bundle, sum(p.numel() for p in model.parameters()))
    return bundle


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the probe bundles")
    p.add_argument("--variants", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2],
                   help="EfficientNet-Lite variants to export (0 = the shipped trunk)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    postprocess = json.loads(SHIPPED_CARD.read_text())["postprocess"]
    for n in args.variants:
        print(make_probe(n, args.out, postprocess))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
