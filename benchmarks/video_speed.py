"""``ivos-bench video-speed``: what a user waits for after Propagate, old vs new propagation.

Per DAVIS-2016 sequence of the split, from the ground-truth first mask, each method in turn
(the order alternates per round, so drifting machine load hits both alike):

* time to the first propagated frame, and to the last (fine-tuning included: the time from
  the Propagate call to the end of the clip);
* milliseconds per propagated frame (p50 over the sequence);
* the same clip with a second object (the first mask rolled to the other quadrant, as
  ``ivos-bench objects`` does): per-frame p50 with two objects / with one;
* J (mean IoU over frames 1..N, one object) as a check that both did the job.

Methods: ``old`` = the "classic" propagation (``VideoPredictor(propagation="classic")``: the
default before the memory mode, ``ivos.settings.PROPAGATIONS``), ``new`` = the default
``VideoPredictor`` settings of the bundle, or those settings changed by ``--new`` (e.g.
``mode=memory,steps=60,weight=0.3,warp=0,working=288x512,crf=0,adapt_every=8,adapt_steps=30``:
mode, fine-tuning steps, memory readout weight, flow warp, the memory mode's working size, the
frame CRF, online adaptation).

    ivos-bench video-speed --split dev --threads 1 --rounds 2
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ._common import write_report

METHODS = ("old", "new")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--split", default="dev", help="DAVIS2016/ImageSets/<split>.txt")
    p.add_argument("--sequences", nargs="+", help="these sequences instead of the split's")
    p.add_argument("--osvos-bundle", default=None, help="OSVOS bundle (default: the shipped default)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of every pool")
    p.add_argument("--rounds", type=int, default=2, help="rounds over the sequences (method order alternates)")
    p.add_argument("--new", default="", metavar="KEY=VALUE,...",
                   help="the new method's settings (mode, steps, weight, working, crf, adapt_every, adapt_steps); "
                   "default: the bundle's")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/video_speed.json"))


def predictor(osvos, method: str, threads: int, new: str = ""):
    """The ``old`` or ``new`` method's ``VideoPredictor`` (``new``: ``--new``'s settings)."""
    import ivos
    from ivos.settings import PropagationSettings

    if method == "old":
        return ivos.VideoPredictor(osvos, propagation="classic")
    keys = dict(kv.split("=", 1) for kv in new.split(",") if kv)
    known = {"mode", "steps", "weight", "warp", "working", "crf", "adapt_every", "adapt_steps"}
    unknown = set(keys) - known
    if unknown:
        raise ivos.InvalidInput(f"--new: unknown keys {sorted(unknown)}; known: {', '.join(sorted(known))}")
    kwargs = {}
    if "mode" in keys:
        kwargs["mode"] = keys["mode"]
    default = PropagationSettings.resolve(osvos.bundle, threads=threads)  # the bundle's recipe, which the keys change
    if "steps" in keys:
        kwargs["finetune_config"] = replace(default.finetune, steps=int(keys["steps"]))
    if "weight" in keys or "warp" in keys:
        kwargs["memory"] = replace(default.memory, **({"weight": float(keys["weight"])} if "weight" in keys else {}),
                                   **({"warp": keys["warp"] == "1"} if "warp" in keys else {}))
    if "working" in keys:
        kwargs["working_size"] = tuple(int(v) for v in keys["working"].split("x"))
    if "crf" in keys:
        kwargs["crf"] = keys["crf"] == "1"
    for key in ("adapt_every", "adapt_steps"):
        if key in keys:
            kwargs[key] = int(keys[key])
    return ivos.VideoPredictor(osvos, **kwargs)


def clip_run(vp, frames, masks: list[np.ndarray], gt: np.ndarray | None) -> dict:
    """Propagates ``masks`` (objects 1..n on frame 0): seconds to the first and the last
    propagated frame from the call, per-frame ms p50, and J of object 1 when ``gt`` is given."""
    from .video import iou

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
        out["j"] = float(np.mean([iou(state.mask(i), gt[i]) for i in range(1, len(gt))]))
    return out


def markdown(report: dict) -> str:
    s = report["summary"]
    lines = ["# Propagation speed, old vs new: `ivos-bench video-speed`", "",
             f"Command: `{report['command']}`", "", f"{report['environment']}", "",
             "old = the \"classic\" propagation (`VideoPredictor(propagation=\"classic\")`, the default before); "
             "new = the default `VideoPredictor` (the bundle's recipe). Each row: medians over the rounds; the methods alternate "
             "order per round.", "",
             "| sequence | frames | old: first s / total s | new: first s / total s | total new/old | "
             "old ms/frame | new ms/frame | new/old | old 2-obj/1-obj | new 2-obj/1-obj | J old | J new |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in report["sequences"].items():
        o, n = r["old"], r["new"]
        lines.append(f"| {name} | {o['frames']} | {o['first_s']:.1f} / {o['total_s']:.1f} | "
                     f"{n['first_s']:.2f} / {n['total_s']:.1f} | {n['total_s'] / o['total_s']:.2f} | "
                     f"{o['frame_ms_p50']:.0f} | {n['frame_ms_p50']:.0f} | {n['frame_ms_p50'] / o['frame_ms_p50']:.2f} | "
                     f"{o['two_objects_ratio']:.2f} | {n['two_objects_ratio']:.2f} | {o['j']:.3f} | {n['j']:.3f} |")
    lines += ["", f"Over the sequences: time from Propagate to the last frame new/old **{s['total_ratio']:.2f}x** "
              f"(sum {s['new_total_s']:.1f} s vs {s['old_total_s']:.1f} s); per-frame p50 new/old "
              f"**{s['frame_ratio']:.2f}x** ({s['new_frame_ms']:.0f} vs {s['old_frame_ms']:.0f} ms, medians of the "
              f"sequences); a second object costs **{s['new_two_objects']:.2f}x** the one-object frame (old "
              f"{s['old_two_objects']:.2f}x); first propagated frame after {s['new_first_s']:.2f} s (old "
              f"{s['old_first_s']:.1f} s), medians."]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    import ivos
    from ivos.cli import DEFAULT_OSVOS
    from ivos.data_root import dataset_dir
    from ivos.evaluation.datasets import davis_sequences

    from .objects import object_masks
    from .video import read_sequence

    davis = dataset_dir("DAVIS2016", args.data_root)
    names = args.sequences or davis_sequences(davis.parent, args.split)
    osvos = ivos.load(args.osvos_bundle or DEFAULT_OSVOS, threads=args.threads)
    vps = {m: predictor(osvos, m, args.threads, args.new) for m in METHODS}
    runs: dict[str, dict[str, list[dict]]] = {n: {m: [] for m in METHODS} for n in names}
    for rnd in range(args.rounds):
        for name in names:
            frames, gt = read_sequence(davis, name, None)
            two = object_masks(gt[0], 2)
            order = METHODS if (rnd + names.index(name)) % 2 == 0 else METHODS[::-1]
            for m in order:
                one = clip_run(vps[m], frames, [gt[0]], gt)
                pair = clip_run(vps[m], frames, two, None)
                one["two_objects_ratio"] = pair["frame_ms_p50"] / one["frame_ms_p50"]
                runs[name][m].append(one)
                print(f"round {rnd + 1} {name} {m}: total {one['total_s']:.1f} s, {one['frame_ms_p50']:.0f} ms/frame, "
                      f"2 objects x{one['two_objects_ratio']:.2f}, J {one['j']:.3f}", file=sys.stderr)
    seqs = {n: {m: {k: float(np.median([r[k] for r in runs[n][m]])) for k in runs[n][m][0]} for m in METHODS}
            for n in names}

    def med(m, k):
        return float(np.median([seqs[n][m][k] for n in names]))

    summary = {"old_total_s": sum(seqs[n]["old"]["total_s"] for n in names),
               "new_total_s": sum(seqs[n]["new"]["total_s"] for n in names),
               "old_frame_ms": med("old", "frame_ms_p50"), "new_frame_ms": med("new", "frame_ms_p50"),
               "old_two_objects": med("old", "two_objects_ratio"), "new_two_objects": med("new", "two_objects_ratio"),
               "old_first_s": med("old", "first_s"), "new_first_s": med("new", "first_s")}
    summary["total_ratio"] = summary["new_total_s"] / summary["old_total_s"]
    summary["frame_ratio"] = summary["new_frame_ms"] / summary["old_frame_ms"]
    report = {"command": "ivos-bench video-speed " + " ".join(sys.argv[2:]),
              "environment": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s), "
                             f"{osvos.bundle.name} on {osvos.backend}, new = {vps['new'].settings.mode} "
                             f"(fine-tune steps {vps['new'].settings.finetune.steps})",
              "sequences": seqs, "rounds": {n: runs[n] for n in names}, "summary": summary}
    write_report(markdown=(args.out.with_suffix(".md"), markdown(report)), json_data=(args.out, report))
    print(markdown(report))
    return 0
