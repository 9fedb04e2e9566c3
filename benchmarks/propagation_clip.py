"""One timed propagation of a clip, and a worker that runs it with another source tree's ivos.

``clip_run`` is what ``ivos-bench video-speed`` measures per method. It uses only the public
video API that every ivos since the first ``VideoPredictor`` has (``init_state``,
``add_new_mask``, ``propagate_in_video``, ``state.mask``), numpy and nothing else of ivos, so
this file also runs as a worker process under an older checkout (``--anchor-tree``: the
propagation of the commit an issue was filed against, timed in the same run):

    PYTHONPATH=<dir with ivos -> TREE/engine> python -P propagation_clip.py --threads 1

The worker loads the tree's default OSVOS bundle with its default ``VideoPredictor``, prints
one JSON line saying what it loaded, then answers each request line on stdin
(``{"video": folder or .npy of (N, H, W, 3) frames, "masks": .npy of (n, H, W) first-frame
masks, "gt": .npy or null}``) with
``clip_run``'s JSON line on stdout. ``-P`` keeps this folder's modules off ``sys.path``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) masks; 1.0 when both are empty (as ``ivos.mask_metrics.iou``)."""
    union = np.count_nonzero((a > 0) | (b > 0))
    return float(np.count_nonzero((a > 0) & (b > 0)) / union) if union else 1.0


def clip_run(vp, frames, masks: list[np.ndarray], gt: np.ndarray | None) -> dict:
    """Propagates ``masks`` (objects 1..n on frame 0): seconds to the first and the last
    propagated frame from the call, per-frame ms p50, and J of object 1 when ``gt`` is given."""
    state = vp.init_state(frames)
    for k, m in enumerate(masks, start=1):
        vp.add_new_mask(state, 0, k, m)
    t0 = time.perf_counter()
    first = None
    ms = []
    for r in vp.propagate_in_video(state):
        if r.frame_idx > 0:
            first = first if first is not None else time.perf_counter() - t0
            ms.append(r.timings.total_ms)
    total = time.perf_counter() - t0
    out = {"first_s": first, "total_s": total, "frame_ms_p50": float(np.median(ms)), "frames": len(ms)}
    if gt is not None:
        out["j"] = float(np.mean([_iou(state.mask(i), gt[i]) for i in range(1, len(gt))]))
    return out


def serve(threads: int) -> int:
    import ivos

    osvos = ivos.load("osvos-lite0", threads=threads)
    vp = ivos.VideoPredictor(osvos)
    print(json.dumps({"ivos": ivos.__file__, "bundle": str(osvos.bundle.path), "backend": osvos.backend}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        masks = list(np.load(request["masks"]))
        gt = None if request["gt"] is None else np.load(request["gt"])
        video = np.load(request["video"]) if request["video"].endswith(".npy") else request["video"]
        print(json.dumps(clip_run(vp, video, masks, gt)), flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    sys.exit(serve(parser.parse_args().threads))
