"""OSVOS fine-tuning settings measured on the held-aside DAVIS train sequences (issue 17, item 4).

Each variant is a set of ``ivos.FinetuneConfig`` overrides; every variant fine-tunes the head
of the same sequences from the ground-truth first mask and propagates through the first
``--max-frames`` frames with the shipped settings otherwise. Reported per variant: mean J
(frames 1..), fine-tune seconds (features / fit) and the final training loss. Variants run
interleaved per sequence, so the load of a shared machine affects them alike.

    python -m ivos.bench.finetune_sweep --variant base: --variant short:steps=150,lr=2e-3,schedule=cosine \\
        --json out.json

The default sequences are ``training.data.VAL_DAVIS`` (bus elephant lucia rhino tennis): DAVIS
train sequences that neither the click networks nor the OSVOS parent were trained on, so
settings chosen here are not chosen on the dev split that reports them.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from .video import read_sequence, run_propagation

log = logging.getLogger("ivos.bench")

HELD_ASIDE = ("bus", "elephant", "lucia", "rhino", "tennis")
"""``training.data.VAL_DAVIS``, repeated here: ivos.bench does not import the training package."""


def parse_variant(text: str, base) -> tuple[str, object]:
    """``name:key=value,key=value`` -> (name, ``base`` with those FinetuneConfig fields)."""
    import ivos

    name, _, spec = text.partition(":")
    if not name:
        raise ivos.InvalidInput(f"--variant {text!r}: give NAME:key=value,... (NAME: for the defaults)")
    types = {f.name: type(getattr(base, f.name)) for f in fields(base)}
    overrides = {}
    for item in filter(None, spec.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in types:
            raise ivos.InvalidInput(f"--variant {text!r}: {item!r} is not key=value with a FinetuneConfig field "
                                    f"({', '.join(types)})")
        overrides[key] = types[key](value) if types[key] is not bool else value.lower() in ("1", "true", "yes")
    return name, replace(base, **overrides)


def main(argv: list[str] | None = None) -> int:
    import ivos
    from ivos.cli import DEFAULT_OSVOS
    from ivos.data_root import dataset_dir

    p = argparse.ArgumentParser(prog="python -m ivos.bench.finetune_sweep", description=__doc__.split("\n")[0])
    p.add_argument("--variant", action="append", required=True, help="NAME:key=value,... (repeatable)")
    p.add_argument("--sequences", nargs="+", default=list(HELD_ASIDE))
    p.add_argument("--max-frames", type=int, default=40)
    p.add_argument("--osvos-bundle", default=DEFAULT_OSVOS)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    osvos = ivos.load(args.osvos_bundle, threads=args.threads)
    base = ivos.FinetuneConfig.for_bundle(osvos.bundle, threads=args.threads)
    variants = dict(parse_variant(v, base) for v in args.variant)
    davis = dataset_dir("DAVIS2016", args.data_root)
    predictors = {name: ivos.VideoPredictor(osvos, finetune_config=cfg) for name, cfg in variants.items()}
    rows: dict[str, dict[str, dict]] = {name: {} for name in variants}
    for seq in args.sequences:
        video, gt = read_sequence(davis, seq, args.max_frames)
        for name, vp in predictors.items():
            t0 = time.time()
            state = vp.init_state(video)
            vp.add_new_mask(state, 0, 1, gt[0])
            r = run_propagation(vp, state, gt)
            rows[name][seq] = {"j": r["j"], "finetune_s": r["finetune_s"], **r["finetune"]}
            log.warning("%s / %s: J %.3f, fine-tune %.1f s (%.0f s)", seq, name, r["j"], r["finetune_s"],
                        time.time() - t0)
    summary = {name: {"j": float(np.mean([r["j"] for r in per.values()])),
                      "finetune_s": float(np.mean([r["finetune_s"] for r in per.values()])),
                      "fit_s": float(np.mean([r["fit_s"] for r in per.values()])),
                      "features_s": float(np.mean([r["features_s"] for r in per.values()])),
                      "loss": float(np.mean([r["loss"] for r in per.values()]))} for name, per in rows.items()}
    print(f"command: python -m ivos.bench.finetune_sweep {' '.join(sys.argv[1:] if argv is None else argv)}\n")
    print("| variant | settings | J | " + " | ".join(args.sequences) + " | fine-tune s (features + fit) | loss |")
    print("|---|---|---:|" + "---:|" * len(args.sequences) + "---|---:|")
    for name, s in summary.items():
        changed = {f.name: getattr(variants[name], f.name) for f in fields(base)
                   if getattr(variants[name], f.name) != getattr(base, f.name)}
        per = " | ".join(f"{rows[name][q]['j']:.3f}" for q in args.sequences)
        print(f"| {name} | {json.dumps(changed) if changed else 'defaults'} | {s['j']:.3f} | {per} | "
              f"{s['finetune_s']:.1f} ({s['features_s']:.1f} + {s['fit_s']:.1f}) | {s['loss']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps({"variants": {n: {f.name: getattr(c, f.name) for f in fields(c)}
                                                      for n, c in variants.items()},
                                         "per_sequence": rows, "summary": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
