"""Records, for every DAVIS train sequence under its held-out fold's bundle, what a fusion
decoder of the memory mode would see per frame: the fine-tuned head's logits, the memory
readout, the flow-warped previous mask and the ground truth (working stride 4, float16).

Honest data for a fusion trained by cross-validation: a sequence's signals come from the
parent head of the fold it is held out in (never trained on it), so a fusion trained on
folds != k and scored on fold k sees held-out behaviour on both sides.

    python -m training.fusion_data --folds 3 --heads lp
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from .video_cv import ROOT, all_sequences, fold_bundle, folds_of

log = logging.getLogger("ivos.training")


def record_sequence(vp, frames, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Fine-tunes on frame 0's mask, then walks frames 1..N feeding back the head's own mask
    (as "osvos+mask" propagation does, whole working frame, no CRF)."""
    from ivos.postprocess import gate_box, gate_to_prior
    from ivos.settings import MemorySettings
    from ivos.video.flow import MaskWarper
    from ivos.video.memory_propagation import bundle_projection
    from ivos.video.memory_read import FrameKeys, ObjectMemory, Projection
    from ivos.video.osvos.finetune import pool4

    session = vp._propagator.session
    state = vp.init_state(frames)
    vp.add_new_mask(state, 0, 1, gt[0])
    vp.finetune(state, 1)
    head = state.objects[1].head
    box = session.letterbox(*gt.shape[1:])
    valid = (box.rh, box.rw)
    scale = box.rw / box.width
    warper = MaskWarper()
    feats0 = session.trunk(session.to_working_rgb(state.video[0]), None)
    projection = bundle_projection(session.model.bundle) or Projection.fit(feats0.high[0])
    fk0 = FrameKeys.of(feats0.high[0], (0, 0), valid, projection)
    x0, y0, x1, y1 = gate_box(gt[0], 0.5)
    near = fk0.inside((x0 * scale, y0 * scale, x1 * scale, y1 * scale))
    memory = ObjectMemory()
    memory.add(0, fk0.keys[near], fk0.values(session.to_working_mask(gt[0]))[near], annotated=True, capacity=0)
    out = {k: [] for k in ("logits", "readout", "prior", "target")}
    prev, grey_prev = gt[0], warper.grey(state.video[0])
    for i in range(1, len(gt)):
        frame = state.video[i]
        grey = warper.grey(frame)
        warped = warper.warp(prev, warper.flow(grey, grey_prev, frame.shape[:2]))
        working = session.to_working_rgb(frame)
        feats = session.trunk(working, None)
        fk = FrameKeys.of(feats.high[0], (0, 0), valid, projection)
        readout = fk.to_working(memory.read(fk.keys, MemorySettings()), session.working)
        prior_w = session.to_working_mask(warped)
        logits = session.head_logits(feats, prior_w, head)
        prob = session.logits_to_frame(logits, box)
        if warped.any():
            gate_to_prior(prob, gate_box(warped, 0.5))
        prev, grey_prev = (prob > 0.5).astype(np.uint8), grey
        out["logits"].append(logits.astype(np.float16))
        out["readout"].append(readout.astype(np.float16))
        out["prior"].append(pool4(prior_w).astype(np.float16))
        out["target"].append(pool4(session.to_working_mask(gt[i])).astype(np.float16))
    return {k: np.stack(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> None:
    import ivos
    from ivos.bench.video import read_sequence

    from .data import default_data_root

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heads", default="lp")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "video_cv")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    davis = default_data_root() / "DAVIS2016"
    names = all_sequences(davis)
    dest = args.out / f"fusion-{args.heads}"
    dest.mkdir(parents=True, exist_ok=True)
    for k, held in enumerate(folds_of(names, args.folds, args.seed)):
        osvos = ivos.load(fold_bundle(args.out, k, args.heads), backend="ort", threads=args.threads)
        vp = ivos.VideoPredictor(osvos, mode="memory", memory=ivos.video.memory_read.MemorySettings(weight=0.0))
        for name in held:
            if (dest / f"{name}.npz").exists():
                continue
            t0 = time.time()
            video, gt = read_sequence(davis, name, None)
            rec = record_sequence(vp, video, gt)
            np.savez(dest / f"{name}.npz", **rec)
            log.warning("fold %d %s: %d frames (%.0f s)", k, name, len(gt), time.time() - t0)
        vp.close()
        osvos.close()


if __name__ == "__main__":
    main()
