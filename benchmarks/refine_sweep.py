"""Sweep of ``VideoPredictor(refine_radius=...)``: the Table-3 worst-frame correction gain
(IoU points after 1/4/10 RITM clicks, the same protocol as ``ivos-bench video``) for each
radius, on named DAVIS-2016 sequences. Used to choose the default on held-aside TRAIN
sequences, then reported on dev:

    python -m ivos.bench.refine_sweep --sequences bus elephant lucia rhino tennis --radii 0.1 0.2 0.3
    python -m ivos.bench.refine_sweep --split dev --radii 0.1 0.2 0.3 0

(radius 0 = None: the network's whole new mask). Prints one line per sequence and radius,
then the mean gains; one CPU thread.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def correction_gains(vp, video, gt: np.ndarray) -> tuple[int, float, dict[int, float]]:
    """Propagates from the ground-truth first mask, then corrects the worst frame with RITM
    clicks through ``vp.refine``: (frame, IoU before, {k: IoU gain after k clicks})."""
    from .video import correction_ious, iou, refine_corrector, worst_frame

    state = vp.init_state(video)
    vp.add_new_mask(state, 0, gt[0])
    for _ in vp.propagate_in_video(state):
        pass
    ious = np.array([iou(state.mask(i), gt[i]) for i in range(len(gt))])
    idx = worst_frame(ious, gt)
    after = correction_ious(refine_corrector(vp, state, idx), state.mask(idx), gt[idx])
    return idx, float(ious[idx]), {k: v - ious[idx] for k, v in after.items()}


def main(argv: list[str] | None = None) -> int:
    import ivos
    from ivos.cli import DEFAULT_CLICK, DEFAULT_OSVOS

    from .click import find_data_root
    from .datasets import davis_sequences
    from .video import CLICKS_FIX, read_sequence

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=None)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--split", help="sequences of DAVIS2016/ImageSets/<split>.txt")
    which.add_argument("--sequences", nargs="+", help="sequence names")
    p.add_argument("--click-bundle", default=None, help="click bundle (default: the shipped ivos-cpu)")
    p.add_argument("--click-crf", action=argparse.BooleanOptionalAction, default=None,
                   help="dense CRF after the click network (default: the click bundle's)")
    p.add_argument("--radii", nargs="+", type=float, default=[0.1, 0.2, 0.3], help="0 = whole mask (None)")
    p.add_argument("--connected", nargs="+", choices=("off", "on"), default=["off"],
                   help="VideoPredictor(refine_connected=...) setting(s), each run with every radius")
    args = p.parse_args(argv)
    root = find_data_root(args.data_root)
    if root is None or not (root / "DAVIS2016").is_dir():
        raise SystemExit("no DAVIS2016 under the data root: pass --data-root ../shared/datasets")
    davis = root / "DAVIS2016"
    names = args.sequences or davis_sequences(root, args.split)
    osvos = ivos.load(DEFAULT_OSVOS, backend="ort", threads=1)
    clicker = ivos.load(args.click_bundle or DEFAULT_CLICK, backend="ort", threads=1)
    settings = [(r, c) for c in args.connected for r in args.radii]
    gains: dict[tuple, list[dict[int, float]]] = {s: [] for s in settings}
    for name in names:
        video, gt = read_sequence(davis, name, None)
        for r, c in settings:
            vp = ivos.VideoPredictor(osvos, clicker, finetune_config=ivos.FinetuneConfig(threads=1),
                                     refine_radius=r or None, refine_connected=c == "on", click_crf=args.click_crf)
            idx, before, g = correction_gains(vp, video, gt)
            gains[(r, c)].append(g)
            print(f"{name} radius {r or None} connected {c}: frame {idx}, IoU before {100 * before:.1f}, gain "
                  + ", ".join(f"{k} click(s) {100 * v:+.1f}" for k, v in g.items()), flush=True)
    print("\n| radius | connected | " + " | ".join(f"{k} click(s)" for k in CLICKS_FIX) + " |")
    print("|---|---|" + "---|" * len(CLICKS_FIX))
    for r, c in settings:
        print(f"| {r or 'None (whole mask)'} | {c} | "
              + " | ".join(f"{100 * np.mean([g[k] for g in gains[(r, c)]]):+.1f}" for k in CLICKS_FIX) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
