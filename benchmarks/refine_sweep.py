"""Sweep of refinement strategies (``ivos.bench.refine_strategies.LimitedRefinement``: radius,
connected, focus): the Table-3 worst-frame correction gain (IoU points after 1/4/10 RITM
clicks, the same protocol as ``ivos-bench video``) for each setting, on named DAVIS-2016
sequences. Each sequence is propagated once (from its ground-truth first mask); every setting
corrects the same worst frame. Used to choose the defaults on held-aside TRAIN sequences,
then reported on dev:

    python -m ivos.bench.refine_sweep --sequences bus elephant lucia rhino tennis --radii 0.2 0 --focus off on
    python -m ivos.bench.refine_sweep --split dev --radii 0.1 0.2 0.3 0

(radius 0 = None: the network's whole new mask). Prints one line per sequence and setting,
then the mean gains; one CPU thread.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def propagate_from_gt(vp, video, gt: np.ndarray):
    """A state propagated from the ground-truth first mask, and its worst frame:
    (state, frame, IoU before)."""
    from ivos.mask_metrics import iou

    from .video import worst_frame

    state = vp.init_state(video)
    vp.add_new_mask(state, 0, 1, gt[0])
    for _ in vp.propagate_in_video(state):
        pass
    ious = np.array([iou(state.mask(i), gt[i]) for i in range(len(gt))])
    idx = worst_frame(ious, gt)
    return state, idx, float(ious[idx])


def correction_gains(vp, state, idx: int, before: float, gt: np.ndarray) -> dict[int, float]:
    """Corrects frame ``idx`` of a propagated ``state`` with RITM clicks through ``vp.refine``
    ({k: IoU gain after k clicks}); the state is left as it was, so that every setting
    corrects the same propagation."""
    from .video import correction_ious, refine_corrector

    edits = len(state.edits.get(idx, []))
    try:
        after = correction_ious(refine_corrector(vp, state, idx), state.mask(idx), gt[idx])
    finally:  # undo the corrections, so every setting corrects the same propagated frame
        while len(state.edits.get(idx, [])) > edits:
            vp.undo(state, idx, 1)
    return {k: v - before for k, v in after.items()}


def main(argv: list[str] | None = None) -> int:
    import ivos
    from ivos.cli import DEFAULT_CLICK, DEFAULT_OSVOS
    from ivos.data_root import dataset_dir
    from ivos.errors import InvalidInput
    from ivos.evaluation.datasets import davis_sequences

    from .refine_strategies import LimitedRefinement
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
                   help="LimitedRefinement(connected=...) setting(s), each run with every radius")
    p.add_argument("--focus", nargs="+", choices=("off", "on"), default=["off"],
                   help="LimitedRefinement(focus=...) setting(s), each run with every other setting")
    args = p.parse_args(argv)
    try:
        davis = dataset_dir("DAVIS2016", args.data_root)
    except InvalidInput as e:
        raise SystemExit(str(e)) from None
    names = args.sequences or davis_sequences(davis.parent, args.split)
    osvos = ivos.load(DEFAULT_OSVOS, backend="ort", threads=1)
    clicker = ivos.load(args.click_bundle or DEFAULT_CLICK, backend="ort", threads=1)
    settings = [(r, c, f) for f in args.focus for c in args.connected for r in args.radii]
    gains: dict[tuple, list[dict[int, float]]] = {s: [] for s in settings}
    finetune = ivos.FinetuneConfig.for_bundle(osvos.bundle, threads=1)
    vp = ivos.VideoPredictor(osvos, clicker, finetune_config=finetune, click_crf=args.click_crf)
    for name in names:
        video, gt = read_sequence(davis, name, None)
        state, idx, before = propagate_from_gt(vp, video, gt)
        for r, c, f in settings:
            vp.refine_strategy = LimitedRefinement(r or None, connected=c == "on", focus=f == "on")
            g = correction_gains(vp, state, idx, before, gt)
            gains[(r, c, f)].append(g)
            print(f"{name} radius {r or None} connected {c} focus {f}: frame {idx}, IoU before {100 * before:.1f}, "
                  "gain " + ", ".join(f"{k} click(s) {100 * v:+.1f}" for k, v in g.items()), flush=True)
    print("\n| radius | connected | focus | " + " | ".join(f"{k} click(s)" for k in CLICKS_FIX) + " |")
    print("|---|---|---|" + "---|" * len(CLICKS_FIX))
    for r, c, f in settings:
        print(f"| {r or 'None (whole mask)'} | {c} | {f} | "
              + " | ".join(f"{100 * np.mean([g[k] for g in gains[(r, c, f)]]):+.1f}" for k in CLICKS_FIX) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
