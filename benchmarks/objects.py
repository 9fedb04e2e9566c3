"""``ivos-bench objects``: what each extra object costs in ``ivos.VideoPredictor``.

For 1, 2 and 4 objects on one DAVIS-2016 sequence: the fine-tune time of all heads
(``propagate_in_video`` fine-tunes one head per object) and the milliseconds per propagated
frame (decode once, one OSVOS run + CRF per object, the overlap resolution), with the ratio
to one object. DAVIS-2016 annotates one object per sequence, so objects 2-4 are the ground
truth's first-frame mask moved to the other quadrants of the frame (wrapped around): the
cost depends on the object count, not on what the objects are, and these copies are
disjoint from the original like real objects (their masks are not scored).

    ivos-bench objects --sequence bear --frames 30 --threads 1
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ._common import write_report

COUNTS = (1, 2, 4)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--sequence", default="bear", help="DAVIS-2016 sequence (default: bear; only the cost is measured)")
    p.add_argument("--frames", type=int, default=30, help="first N frames of the sequence")
    p.add_argument("--counts", type=int, nargs="+", default=list(COUNTS), help="object counts to measure")
    p.add_argument("--osvos-bundle", default=None, help="OSVOS bundle (default: the shipped default)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of every pool (0 = all usable)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/objects.json"))


def object_masks(first: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` (H, W) uint8 masks: ``first`` and copies of it rolled by half the frame
    height and/or width (the other quadrants)."""
    h, w = first.shape
    shifts = [(0, 0), (h // 2, w // 2), (0, w // 2), (h // 2, 0)]
    if count > len(shifts):
        raise SystemExit(f"ivos-bench objects: at most {len(shifts)} objects, got {count}")
    return [np.roll(first, s, axis=(0, 1)).astype(np.uint8) for s in shifts[:count]]


def measure(vp, frames: np.ndarray, first: np.ndarray, counts: list[int]) -> list[dict]:
    """Per object count: the fine-tune seconds of its heads (run one after another, as
    ``propagate_in_video`` does) and the milliseconds per propagated frame (p50, mean).

    The heads are fine-tuned once, on the largest count's state (object k's head is the same
    for every count: same frame, same mask) and copied to the smaller states. The
    propagations of all counts are then advanced frame by frame in alternating order, so
    that drifting machine load hits every count alike."""
    states = {}
    for n in counts:
        states[n] = vp.init_state(frames)
        for k, mask in enumerate(object_masks(first, n), start=1):
            vp.add_new_mask(states[n], 0, k, mask)
    largest = states[max(counts)]
    seconds = {}
    for k in largest.obj_ids:
        t0 = time.perf_counter()
        vp.finetune(largest, k)
        seconds[k] = time.perf_counter() - t0
    for n in counts:
        for k in states[n].obj_ids:
            src, dst = largest.objects[k], states[n].objects[k]
            dst.head, dst.head_frames, dst.head_digest, dst.head_model = (src.head, src.head_frames, src.head_digest,
                                                                          src.head_model)
    runs = {n: vp.propagate_in_video(states[n], finetune=False) for n in counts}
    ms: dict[int, list[float]] = {n: [] for n in counts}
    for i in range(len(frames)):
        for n in (counts if i % 2 == 0 else counts[::-1]):
            r = next(runs[n])
            if r.frame_idx > 0:
                ms[n].append(r.timings.total_ms)
    return [{"objects": n, "finetune_s": sum(seconds[k] for k in range(1, n + 1)),
             "frame_ms_p50": float(np.median(ms[n])), "frame_ms_mean": float(np.mean(ms[n])), "frames": len(ms[n])}
            for n in counts]


def markdown(report: dict) -> str:
    base = report["rows"][0]
    lines = ["# Cost per object: `ivos-bench objects`", "", f"Command: `{report['command']}`", "",
             f"Sequence {report['sequence']} ({report['frames']} frames, {report['size']}), OSVOS bundle "
             f"{report['osvos']} ({report['backend']}), {report['threads']} thread(s), CRF on every frame; "
             f"{report['machine']}.", "",
             "Heads fine-tuned one after another (object k's head is fine-tuned once and shared by every "
             "count); the propagations of all counts advanced frame by frame in alternating order in one "
             "run, so the ratios are the figures.", "",
             "| objects | fine-tune s (all heads) | x 1 object | ms per frame p50 | x 1 object |",
             "|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['objects']} | {r['finetune_s']:.1f} | {r['finetune_s'] / base['finetune_s']:.2f} | "
                     f"{r['frame_ms_p50']:.0f} | {r['frame_ms_p50'] / base['frame_ms_p50']:.2f} |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    import os
    import platform

    import ivos
    from ivos.cli import DEFAULT_OSVOS
    from ivos.data_root import dataset_dir

    from .video import read_sequence

    davis = dataset_dir("DAVIS2016", args.data_root)
    frames, gt = read_sequence(davis, args.sequence, args.frames)
    osvos = ivos.load(args.osvos_bundle or DEFAULT_OSVOS, threads=args.threads)
    finetune = ivos.FinetuneConfig.for_bundle(osvos.bundle, threads=args.threads)
    vp = ivos.VideoPredictor(osvos, finetune_config=finetune)
    rows = measure(vp, frames, gt[0], sorted(args.counts))
    report = {"command": "ivos-bench objects " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in
                                                       [("sequence", args.sequence), ("frames", args.frames),
                                                        ("threads", args.threads)]),
              "sequence": args.sequence, "frames": len(frames), "size": f"{frames.shape[2]}x{frames.shape[1]}",
              "osvos": osvos.bundle.name, "backend": osvos.backend, "threads": args.threads,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "rows": rows}
    write_report(markdown=(args.out.with_suffix(".md"), markdown(report)), json_data=(args.out, report))
    print(markdown(report))
    return 0
