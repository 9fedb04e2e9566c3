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
frame CRF, online adaptation, the quick start: ``quick_steps``, ``quick_frames``).

With ``--anchor-tree TREE`` a third method, ``anchor``, is TREE's own default propagation
(e.g. the commit an issue's "today" was measured at), run by a worker process with TREE's
``ivos`` in the same rounds (``TreeAnchor``, ``propagation_clip``).

    ivos-bench video-speed --split dev --threads 1 --rounds 2
    git worktree add /tmp/ivos-23af9b9 23af9b9 && (cd /tmp/ivos-23af9b9 && python setup.py build_ext --inplace)
    ivos-bench video-speed --split dev --threads 1 --rounds 2 --anchor-tree /tmp/ivos-23af9b9
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ._common import write_report
from .propagation_clip import clip_run

METHODS = ("old", "new")
WARM_UP_FRAMES = 4
"""Each method first propagates this many frames of the first sequence, untimed: the first run of
a process pays for loading (ONNX Runtime sessions, torch's import), which is no method's cost."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--split", default="dev", help="DAVIS2016/ImageSets/<split>.txt")
    p.add_argument("--sequences", nargs="+", help="these sequences instead of the split's")
    p.add_argument("--osvos-bundle", default=None, help="OSVOS bundle (default: the shipped default)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of every pool")
    p.add_argument("--rounds", type=int, default=2, help="rounds over the sequences (method order alternates)")
    p.add_argument("--new", default="", metavar="KEY=VALUE,...",
                   help="the new method's settings (mode, steps, weight, working, crf, adapt_every, adapt_steps, "
                   "quick_steps, quick_frames); "
                   "default: the bundle's")
    p.add_argument("--anchor-tree", type=Path, default=None, metavar="TREE",
                   help="also time TREE's default propagation (a checkout of an older commit with its native module "
                   "built in place) in the same rounds, as a third method 'anchor' (TreeAnchor)")
    p.add_argument("--idle", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long before each timed propagation, as a user pauses before Propagate (a VM that "
                   "hands free memory back to its host does so in such pauses, and what fresh memory costs changes)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/video_speed.json"))


def predictor(osvos, method: str, threads: int, new: str = ""):
    """The ``old`` or ``new`` method's ``VideoPredictor`` (``new``: ``--new``'s settings)."""
    import ivos
    from ivos.settings import PropagationSettings

    if method == "old":
        return ivos.VideoPredictor(osvos, propagation="classic")
    keys = dict(kv.split("=", 1) for kv in new.split(",") if kv)
    known = {"mode", "steps", "weight", "warp", "working", "crf", "adapt_every", "adapt_steps", "quick_steps",
             "quick_frames"}
    unknown = set(keys) - known
    if unknown:
        raise ivos.InvalidInput(f"--new: unknown keys {sorted(unknown)}; known: {', '.join(sorted(known))}")
    kwargs = {}
    if "mode" in keys:
        kwargs["mode"] = keys["mode"]
    default = PropagationSettings.resolve(osvos.bundle, threads=threads)  # the bundle's recipe, which the keys change
    tuned = {k: int(keys[k]) for k in ("steps", "quick_steps", "quick_frames") if k in keys}
    if tuned:
        kwargs["finetune_config"] = replace(default.finetune, **tuned)
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


class TreeAnchor:
    """The default propagation of another source tree (``--anchor-tree``: e.g. a checkout of the
    commit an issue was filed against, its native module built in place with ``python setup.py
    build_ext --inplace``), run by ``propagation_clip``'s worker in a process of its own whose
    ``ivos`` is that tree's ``engine/``."""

    def __init__(self, tree: Path, threads: int):
        import subprocess
        import tempfile

        engine = tree.resolve() / "engine"
        if not (engine / "__init__.py").is_file() or not list(engine.glob("_C*.so")):
            raise SystemExit(f"--anchor-tree {tree}: needs a source tree with engine/ and its native module built "
                             f"in place (cd {tree} && python setup.py build_ext --inplace)")
        self._dir = tempfile.TemporaryDirectory(prefix="ivos-anchor-")
        (Path(self._dir.name) / "ivos").symlink_to(engine)
        worker = Path(__file__).with_name("propagation_clip.py")
        env = {**os.environ, "PYTHONPATH": self._dir.name}
        self._proc = subprocess.Popen([sys.executable, "-P", str(worker), "--threads", str(threads)], env=env,
                                      cwd=self._dir.name, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.loaded = json.loads(self._read())
        if not self.loaded["ivos"].startswith(self._dir.name):
            raise SystemExit(f"--anchor-tree: the worker imported {self.loaded['ivos']}, not {engine}")

    def _read(self) -> str:
        line = self._proc.stdout.readline()
        if not line:
            raise SystemExit(f"--anchor-tree: the worker exited (code {self._proc.wait()}); its error is above")
        return line

    def run(self, video, masks: list[np.ndarray], gt: np.ndarray | None) -> dict:
        paths = {"masks": Path(self._dir.name) / "masks.npy", "gt": Path(self._dir.name) / "gt.npy"}
        if isinstance(video, np.ndarray):  # in-memory frames travel as an .npy file
            np.save(Path(self._dir.name) / "frames.npy", video)
            video = Path(self._dir.name) / "frames.npy"
        np.save(paths["masks"], np.stack(masks))
        if gt is not None:
            np.save(paths["gt"], gt)
        self._proc.stdin.write(json.dumps({"video": str(video), "masks": str(paths["masks"]),
                                           "gt": None if gt is None else str(paths["gt"])}) + "\n")
        self._proc.stdin.flush()
        return json.loads(self._read())

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait()
        self._dir.cleanup()


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
    if report.get("anchor"):
        a = report["anchor"]
        lines += ["", f"anchor = the default propagation of another source tree, `{a['tree']}` (its `ivos` at "
                  f"`{a['ivos']}`, bundle `{a['bundle']}` on {a['backend']}), in its own process, in the same rounds.", "",
                  "| sequence | anchor: first s / total s | total new/anchor | anchor ms/frame | new/anchor | "
                  "anchor 2-obj/1-obj | J anchor |", "|---|---|---:|---:|---:|---:|---:|"]
        for name, r in report["sequences"].items():
            o, n = r["anchor"], r["new"]
            lines.append(f"| {name} | {o['first_s']:.1f} / {o['total_s']:.1f} | {n['total_s'] / o['total_s']:.2f} | "
                         f"{o['frame_ms_p50']:.0f} | {n['frame_ms_p50'] / o['frame_ms_p50']:.2f} | "
                         f"{o['two_objects_ratio']:.2f} | {o['j']:.3f} |")
        lines += ["", f"Against the anchor: time from Propagate to the last frame new/anchor "
                  f"**{s['total_ratio_anchor']:.2f}x** (sum {s['new_total_s']:.1f} s vs {s['anchor_total_s']:.1f} s); "
                  f"per-frame p50 new/anchor **{s['frame_ratio_anchor']:.2f}x** ({s['new_frame_ms']:.0f} vs "
                  f"{s['anchor_frame_ms']:.0f} ms); the anchor's second object {s['anchor_two_objects']:.2f}x, its "
                  f"first frame after {s['anchor_first_s']:.1f} s."]
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
    runners = {m: (lambda video, masks, gt, vp=vps[m]: clip_run(vp, video, masks, gt)) for m in METHODS}
    anchor = TreeAnchor(args.anchor_tree, args.threads) if args.anchor_tree is not None else None
    if anchor is not None:
        runners["anchor"] = anchor.run
    methods = tuple(runners)
    warm_frames, warm_gt = read_sequence(davis, names[0], WARM_UP_FRAMES)
    for m in methods:  # sessions, torch and caches made before any timed run, for every method alike
        runners[m](warm_frames, [warm_gt[0]], None)
    runs: dict[str, dict[str, list[dict]]] = {n: {m: [] for m in methods} for n in names}
    for rnd in range(args.rounds):
        for name in names:
            frames, gt = read_sequence(davis, name, None)
            two = object_masks(gt[0], 2)
            shift = (rnd + names.index(name)) % len(methods)  # each method takes each place in turn
            for m in methods[shift:] + methods[:shift]:
                time.sleep(args.idle)
                one = runners[m](frames, [gt[0]], gt)
                time.sleep(args.idle)
                pair = runners[m](frames, two, None)
                one["two_objects_ratio"] = pair["frame_ms_p50"] / one["frame_ms_p50"]
                runs[name][m].append(one)
                print(f"round {rnd + 1} {name} {m}: total {one['total_s']:.1f} s, {one['frame_ms_p50']:.0f} ms/frame, "
                      f"2 objects x{one['two_objects_ratio']:.2f}, J {one['j']:.3f}", file=sys.stderr)
    if anchor is not None:
        anchor.close()
    seqs = {n: {m: {k: float(np.median([r[k] for r in runs[n][m]])) for k in runs[n][m][0]} for m in methods}
            for n in names}

    def med(m, k):
        return float(np.median([seqs[n][m][k] for n in names]))

    summary = {}
    for m in methods:
        summary.update({f"{m}_total_s": sum(seqs[n][m]["total_s"] for n in names), f"{m}_frame_ms": med(m, "frame_ms_p50"),
                        f"{m}_two_objects": med(m, "two_objects_ratio"), f"{m}_first_s": med(m, "first_s")})
    summary["total_ratio"] = summary["new_total_s"] / summary["old_total_s"]
    summary["frame_ratio"] = summary["new_frame_ms"] / summary["old_frame_ms"]
    if anchor is not None:
        summary["total_ratio_anchor"] = summary["new_total_s"] / summary["anchor_total_s"]
        summary["frame_ratio_anchor"] = summary["new_frame_ms"] / summary["anchor_frame_ms"]
    report = {"command": "ivos-bench video-speed " + " ".join(sys.argv[2:]),
              "environment": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s), "
                             f"{osvos.bundle.name} on {osvos.backend}, new = {vps['new'].settings.mode} "
                             f"(fine-tune steps {vps['new'].settings.finetune.steps})",
              "anchor": None if anchor is None else {"tree": str(args.anchor_tree), **anchor.loaded},
              "sequences": seqs, "rounds": {n: runs[n] for n in names}, "summary": summary}
    write_report(markdown=(args.out.with_suffix(".md"), markdown(report)), json_data=(args.out, report))
    print(markdown(report))
    return 0
