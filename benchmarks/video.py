"""``ivos-bench video``: one-shot video segmentation and worst-frame correction on DAVIS-2016
sequences (paper sections 3.2 and 3.3), through ``ivos.VideoPredictor``.

Per sequence of ``ImageSets/<split>.txt`` (every frame; J = mean IoU over the frames after
the annotated frame 0, the DAVIS convention of not scoring the given annotation):

(a) ``j_gt_init``: OSVOS fine-tuned on the ground-truth mask of frame 0, propagated;
(b) ``j_clicks[k]``: the same from the mask that ``ivos.ImagePredictor`` gives after k = 1, 4,
    8 clicks of the RITM simulated user on frame 0 (Figure 5 protocol);
(c) ``fix_gain[k]``: the worst frame of (a) (lowest IoU against the ground truth), corrected
    with k = 1, 4, 10 simulated clicks: IoU after minus IoU before, for our refinement
    network (the propagated mask as its input, ``VideoPredictor.refine``) and for OpenCV
    GrabCut (the paper's box heuristic, ``GrabCutSegmenter``) (Table 3 protocol);
plus fine-tune seconds, per-frame milliseconds (decode + network + upsampling), how often
``suggest_frame`` names one of the 3 truly worst frames (every propagation of (a) and (b)
counts), the motion difficulty next to J, and (``--full-finetune``) full fine-tuning of
backbone + head in torch on the same examples, for accuracy and time. The torch network of that
baseline is defined in ``ivos.export``, which ``ivos.bench`` never imports: ``run`` takes a
loader for it, and ``python -m training.bench_video`` (a checkout, where both are at hand)
passes one; ``ivos-bench video --full-finetune`` says so.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ivos.mask_metrics import iou

from ._common import environment, percentiles, write_report
from .profiling import profile_markdown

log = logging.getLogger("ivos.bench")

CLICKS_INIT = (1, 4, 8)
CLICKS_FIX = (1, 4, 10)
FRAME_STAGES = ("decode_ms", "infer_ms", "post_ms")
"""``ivos.FrameTimings`` fields reported per stage (post: upsampling, gate, CRF, overlaps, RLE)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ivos.cli import DEFAULT_CLICK, DEFAULT_OSVOS

    p.add_argument("--data-root", type=Path, default=None, help="datasets folder (default: $IVOS_DATA_ROOT "
                   "or the nearest shared/datasets above the cwd)")
    p.add_argument("--split", default="dev", help="DAVIS2016/ImageSets/<split>.txt")
    p.add_argument("--osvos-bundle", type=Path, default=None, help=f"OSVOS bundle (default: the shipped {DEFAULT_OSVOS.name})")
    p.add_argument("--click-bundle", type=Path, default=None, help=f"click bundle (default: the shipped {DEFAULT_CLICK.name})")
    p.add_argument("--backend", default="ort")
    p.add_argument("--threads", type=int, default=0, help="engine and fine-tuning CPU threads (0 = default)")
    p.add_argument("--propagation", default="bundle", choices=("bundle", "classic"),
                   help="named propagation recipe (ivos.settings.PROPAGATIONS; default: the OSVOS bundle's)")
    p.add_argument("--mode", default=None, choices=("osvos", "osvos+mask", "memory"),
                   help="propagation mode (default: the recipe's)")
    p.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: FinetuneConfig)")
    p.add_argument("--sequences", nargs="+", help="these sequence names instead of the split's")
    p.add_argument("--limit", type=int, default=None, help="first N sequences only")
    p.add_argument("--max-frames", type=int, default=None, help="first N frames of each sequence only")
    p.add_argument("--no-clicks", action="store_true", help="skip protocols (b) and (c)")
    p.add_argument("--crf", action=argparse.BooleanOptionalAction, default=None,
                   help="dense CRF on every propagated frame (default: the OSVOS bundle's postprocess.crf)")
    p.add_argument("--click-crf", action=argparse.BooleanOptionalAction, default=None,
                   help="dense CRF after the click network, for the first-frame clicks and the corrections "
                        "(default: the click bundle's postprocess.crf)")
    p.add_argument("--crf-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a dense-CRF parameter for propagated frames (repeatable; default: "
                        "the OSVOS bundle's postprocess.crf_params)")
    p.add_argument("--crop-context", type=int, default=None, metavar="PX",
                   help="working pixels of context around the motion gate's box when the OSVOS network runs "
                        "on a crop (default: ivos.settings.NETWORK_CROP_CONTEXT)")
    p.add_argument("--no-crop", action="store_true", help="run the OSVOS network on the whole frame")
    p.add_argument("--crf-max-pixels", type=int, default=None, metavar="N",
                   help="pixel budget of the frame CRF (default: ivos.settings.FRAME_CRF_MAX_PIXELS)")
    p.add_argument("--full-finetune", action="store_true", help="also fine-tune backbone + head in torch (the "
                   "network comes from ivos.export: run as python -m training.bench_video from a checkout)")
    p.add_argument("--full-steps", type=int, default=60, help="steps of --full-finetune")
    p.add_argument("--full-batch", type=int, default=4, help="batch of --full-finetune (whole 480x864 images)")
    p.add_argument("--osvos-weights", type=Path, default=None,
                   help="torch weights for --full-finetune (default: the checkout's export/weights/osvos-lite0.pt)")
    p.add_argument("--json", type=Path, help="write all numbers here")
    p.add_argument("--markdown", type=Path, help="write the markdown report here")
    p.add_argument("--plot", type=Path, help="write a PNG (J per sequence and protocol, fix gain) here")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after the timed runs, fine-tune and propagate the first sequence once more under cProfile "
                        "and report the N functions with the most self time of each (0 = off)")


def read_sequence(root: Path, name: str, max_frames: int | None) -> tuple[object, np.ndarray]:
    """(video, masks (N, H, W) uint8 {0,1}) of one DAVIS-2016 sequence. The video is the
    sequence's JPEG folder, decoded lazily by the engine (so per-frame times include JPEG
    decoding); with ``max_frames``, the first frames as an in-memory array."""
    from PIL import Image

    folder = root / "JPEGImages" / "480p" / name
    files = sorted(folder.glob("*.jpg"))[:max_frames]
    masks = np.stack([(np.asarray(Image.open(root / "Annotations" / "480p" / name / f"{f.stem}.png").convert("L"))
                       > 127).astype(np.uint8) for f in files])
    if max_frames is None:
        return folder, masks
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]), masks


def run_propagation(vp, state, gt: np.ndarray) -> dict:
    """Propagates, then scores: per-frame IoU, J, timings, the suggestion and difficulty."""
    ms, stages = [], {stage: [] for stage in FRAME_STAGES}
    for r in vp.propagate_in_video(state):
        if r.sources[1] == "propagated":
            ms.append(r.timings.total_ms)
            for stage in FRAME_STAGES:
                stages[stage].append(getattr(r.timings, stage))
    ious = np.array([iou(state.mask(i), gt[i]) for i in range(len(gt))])
    scored = ious[1:] if len(ious) > 1 else ious
    worst3 = set((np.argsort(ious[1:])[:3] + 1).tolist())
    s = vp.suggest_frame(state, 1)
    d = vp.difficulty(state, 1)
    ft = state.finetune_report  # None: propagated with the parent head (0 fine-tuning steps)
    return {"j": float(scored.mean()), "ious": ious.round(4).tolist(), "frame_ms": ms, "frame_stages": stages,
            "finetune_s": ft.seconds if ft else 0.0, "finetune": {
                "features_s": ft.feature_seconds if ft else 0.0, "fit_s": ft.train_seconds if ft else 0.0,
                "examples": ft.examples if ft else 0, "loss": ft.final_loss if ft else None},
            "worst": worst_frame(ious, gt), "suggested": s.frame_idx, "suggest_hit": s.frame_idx in worst3,
            "difficulty": d.score, "image_motion": d.image_motion}


def profile_sequence(vp, davis: Path, name: str, max_frames: int | None, n: int) -> dict:
    """Fine-tunes and propagates sequence ``name`` from its ground-truth first mask once more,
    each under its own cProfile: {"sequence", "finetune", "propagation"} (top ``n`` functions
    by self time, ``ivos.bench.profiling``)."""
    from .profiling import FunctionProfile

    video, gt = read_sequence(davis, name, max_frames)
    state = vp.init_state(video)
    vp.add_new_mask(state, 0, 1, gt[0])
    tune, frames = FunctionProfile(), FunctionProfile()
    with tune:
        vp.finetune(state, 1)
    with frames:
        for _ in vp.propagate_in_video(state, finetune=False):
            pass
    return {"sequence": name, "finetune": tune.top(n), "propagation": frames.top(n)}


def worst_frame(ious: np.ndarray, gt: np.ndarray) -> int:
    """The lowest-IoU frame after frame 0 among frames where the object is visible (a frame
    without the object is fixed by clearing its mask, not by clicks: the Table 3 protocol
    corrects object masks)."""
    visible = [i for i in range(1, len(gt)) if gt[i].any()] or list(range(1, len(gt)))
    return int(min(visible, key=lambda i: ious[i]))


def _click_masks(image_predictor, frame: np.ndarray, gt: np.ndarray, counts: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Masks after k RITM clicks on one frame (from scratch), for each k in ``counts``."""
    from ivos.evaluation.clicker import next_click

    image_predictor.set_image(frame)
    clicks, pred, out = [], None, {}
    for k in range(1, max(counts) + 1):
        c = next_click(gt, pred, is_first=k == 1, clicked=clicks)
        if c is not None:
            clicks.append(c)
            pred = image_predictor.add_click(c.x, c.y, c.positive).mask
        if k in counts:
            out[k] = pred.copy()
    return out


def correction_ious(correct, start: np.ndarray, gt: np.ndarray) -> dict[int, float]:
    """IoU against ``gt`` after k RITM clicks (k in CLICKS_FIX), starting from mask ``start``;
    ``correct(clicks, pred)`` returns the mask after the newest click of ``clicks``."""
    from ivos.evaluation.clicker import next_click

    clicks, pred, out = [], start, {}
    for k in range(1, max(CLICKS_FIX) + 1):
        c = next_click(gt, pred, clicked=clicks)
        if c is not None:
            clicks.append(c)
            pred = correct(clicks, pred)
        if k in CLICKS_FIX:
            out[k] = iou(pred, gt)
    return out


def refine_corrector(vp, state, idx: int):
    """``correct(clicks, pred)`` for ``correction_ious``: each click through ``vp.refine``."""
    return lambda clicks, pred: vp.refine(state, idx, 1, [[clicks[-1].x, clicks[-1].y]], [int(clicks[-1].positive)]).mask


def _fix_worst(vp, state, frame: np.ndarray, gt: np.ndarray, idx: int) -> dict:
    """Table 3 protocol on frame ``idx``: IoU after k clicks, ours (refine) vs GrabCut."""
    from .grabcut_baseline import GrabCutSegmenter

    start = state.mask(idx)
    grabcut = GrabCutSegmenter()
    grabcut.set_image(frame)
    return {"frame": idx, "before": iou(start, gt),
            "ours": correction_ious(refine_corrector(vp, state, idx), start, gt),
            "grabcut": correction_ious(lambda clicks, pred: grabcut.predict(clicks, pred).astype(np.uint8), start, gt)}


def _full_finetune(net, vp, osvos, frames, gt: np.ndarray, steps: int, batch: int, threads: int, *,
                   mean: tuple[float, float, float], std: tuple[float, float, float]) -> dict:
    """Backbone + head of ``net`` (the torch OSVOS network: ``net(images, priors) -> logits``,
    images normalized with ``mean``/``std`` (RGB in [0, 1]), all weights trainable) fine-tuned
    on the same augmented examples as the head-only fine-tune (batch norm frozen: statistics
    of a few near-identical images are useless), then propagated in torch with the same
    geometry and prior logic."""
    import torch
    import torch.nn.functional as F

    from ivos.video.osvos.finetune import build_examples
    from ivos.video.osvos.runner import OsvosRunner

    if threads:
        torch.set_num_threads(threads)
    session = OsvosRunner(osvos)  # geometry helpers + feature-free example building
    cfg = vp.settings.finetune
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    t0 = time.perf_counter()
    ex = build_examples(session, [frames[0]], [gt[0]], cfg, full_size=True)
    images = (torch.from_numpy(ex["image"]).permute(0, 3, 1, 2).float() / 255 - mean) / std
    priors = torch.from_numpy(ex["prior_full"])[:, None]
    targets = torch.from_numpy(ex["target"])
    net.eval()  # batch norm in inference mode; all weights still train
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr * 0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        loss = F.binary_cross_entropy_with_logits(net(images[idx], priors[idx]), targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    ft_s = time.perf_counter() - t0
    masks, ms = {0: gt[0]}, []
    use_prior = vp.settings.use_prior
    with torch.inference_mode():
        for i in range(1, len(frames)):
            t = time.perf_counter()
            box = session.letterbox(*frames[i].shape[:2])
            img = (torch.from_numpy(session.to_working_rgb(frames[i])).permute(2, 0, 1)[None].float() / 255 - mean) / std
            prior = session.to_working_mask(masks[i - 1]) if use_prior else np.zeros(session.working, np.float32)
            logits = net(img, torch.from_numpy(prior)[None, None])[0, 0].numpy()
            masks[i] = (session.logits_to_frame(logits, box) > 0.5).astype(np.uint8)
            ms.append((time.perf_counter() - t) * 1e3)
    ious = [iou(masks[i], gt[i]) for i in range(1, len(frames))]
    return {"j": float(np.mean(ious)), "finetune_s": ft_s, "frame_ms_p50": float(np.median(ms)), "steps": steps,
            "batch": batch}


def _crf_max_pixels(args) -> int:
    """``VideoPredictor(crf_max_pixels=...)`` from --crf-max-pixels."""
    from ivos.settings import FRAME_CRF_MAX_PIXELS

    return FRAME_CRF_MAX_PIXELS if args.crf_max_pixels is None else args.crf_max_pixels


def _crop_context(args) -> int | None:
    """``VideoPredictor(crop_context=...)`` from --crop-context / --no-crop."""
    from ivos.settings import NETWORK_CROP_CONTEXT

    if args.no_crop:
        return None
    return NETWORK_CROP_CONTEXT if args.crop_context is None else args.crop_context


def _environment(args, backend: str) -> dict:
    env = environment(engine_threads=args.threads, backend=backend, propagation=args.propagation, mode=args.mode,
                      crf="bundle default" if args.crf is None else args.crf,
                      click_crf="bundle default" if args.click_crf is None else args.click_crf,
                      load_avg_at_start=os.getloadavg()[0])
    try:
        import torch

        env["torch"], env["torch_threads"] = torch.__version__, torch.get_num_threads()
    except ImportError:
        pass
    return env


def markdown(report: dict) -> str:
    s = report["summary"]
    lines = [f"# ivos-bench video ({report['split']})", "", f"command: `{report['command']}`", "",
             "environment: " + ", ".join(f"{k}={v}" for k, v in report["environment"].items()), "",
             "| sequence | frames | J (GT init) | " + " | ".join(f"J ({k} clicks)" for k in CLICKS_INIT)
             + " | worst IoU | difficulty | suggested / worst |", "|---" * (7 + len(CLICKS_INIT)) + "|"]
    for name, r in report["sequences"].items():
        row = [name, str(len(r["gt_init"]["ious"])), f"{r['gt_init']['j']:.3f}"]
        row += [f"{r['clicks'][str(k)]['j']:.3f}" if "clicks" in r else "-" for k in CLICKS_INIT]
        row += [f"{min(r['gt_init']['ious'][1:]):.3f}", f"{r['gt_init']['difficulty']:.3f}",
                f"{r['gt_init']['suggested']} / {r['gt_init']['worst']}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"**mean J from the ground-truth mask: {s['j_gt_init']:.3f}**"]
    if s.get("j_clicks"):
        lines.append("mean J from k clicks: " + ", ".join(f"{k}: {v:.3f}" for k, v in s["j_clicks"].items()))
    if s.get("fix_gain"):
        lines += ["", "Worst-frame correction (IoU gain in points, mean over sequences; Table 3 protocol):", "",
                  "| method | IoU before | " + " | ".join(f"{k} click(s)" for k in CLICKS_FIX) + " |",
                  "|---" * (2 + len(CLICKS_FIX)) + "|"]
        for m in ("ours", "grabcut"):
            lines.append(f"| {m} | {100 * s['fix_before']:.1f} | " + " | ".join(
                f"{100 * s['fix_iou'][m][str(k)]:.1f} ({100 * s['fix_gain'][m][str(k)]:+.1f})" for k in CLICKS_FIX)
                + " |")
    lines += ["", f"fine-tune seconds (head only, cached features): {json.dumps(s['finetune_s'])}",
              f"per-frame ms (decode + network + post-processing incl. the CRF): {json.dumps(s['frame_ms'])}",
              "", "| stage | p50 | p90 | mean |", "|---|---:|---:|---:|"]
    lines += [f"| frame: {stage.removesuffix('_ms')} (ms) | {v['p50']:.1f} | {v['p90']:.1f} | {v['mean']:.1f} |"
              for stage, v in s["frame_stages_ms"].items()]
    lines += [f"| fine-tune: {stage} (s) | {v['p50']:.2f} | {v['p90']:.2f} | {v['mean']:.2f} |"
              for stage, v in s["finetune_stages_s"].items()]
    lines += ["",
              f"suggest_frame among the 3 truly worst frames: {s['suggest_hits']}/{s['suggest_trials']} "
              f"({100 * s['suggest_hit_rate']:.0f}%; chance is about {100 * s['suggest_chance']:.0f}%)",
              f"difficulty vs J (Pearson r over sequences): {s['difficulty_j_corr']}"]
    if s.get("full_finetune"):
        f = s["full_finetune"]
        lines += ["", f"full fine-tuning in torch (backbone + head, {f['steps']} steps of {f['batch']} whole images, "
                      f"lr 1e-4): J {f['j']:.3f} "
                      f"vs head-only {f['j_head_only']:.3f}; fine-tune {f['finetune_s']:.1f} s vs "
                      f"{f['finetune_s_head_only']:.1f} s"]
    if report.get("profile"):
        p = report["profile"]
        for part in ("finetune", "propagation"):
            lines += ["", profile_markdown(p[part], f"profile: {part} of {p['sequence']} (one more, untimed run)")]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["sequences"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    x = np.arange(len(names))
    series = [("GT init", [report["sequences"][n]["gt_init"]["j"] for n in names])]
    for k in CLICKS_INIT:
        if all("clicks" in report["sequences"][n] for n in names):
            series.append((f"{k} clicks", [report["sequences"][n]["clicks"][str(k)]["j"] for n in names]))
    width = 0.8 / len(series)
    for i, (label, vals) in enumerate(series):
        axes[0].bar(x + i * width, vals, width, label=label)
    axes[0].set_xticks(x + 0.4 - width / 2, names, rotation=20)
    axes[0].set_ylabel("J (mean IoU)")
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    axes[0].set_title("OSVOS J per sequence and first-frame mask")
    s = report["summary"]
    if s.get("fix_gain"):
        ks = [0, *CLICKS_FIX]
        for m in ("ours", "grabcut"):
            axes[1].plot(ks, [100 * s["fix_before"]] + [100 * s["fix_iou"][m][str(k)] for k in CLICKS_FIX], "o-",
                         label=m)
        axes[1].set_xlabel("correction clicks on the worst frame")
        axes[1].set_ylabel("IoU of the worst frame (%)")
        axes[1].legend()
        axes[1].set_title("Worst-frame correction (Table 3 protocol)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def summarize(seqs: dict) -> dict:
    s: dict = {"j_gt_init": float(np.mean([r["gt_init"]["j"] for r in seqs.values()]))}
    runs = [r["gt_init"] for r in seqs.values()] + [c for r in seqs.values() for c in r.get("clicks", {}).values()]
    s["finetune_s"] = percentiles([r["finetune_s"] for r in runs])
    s["frame_ms"] = percentiles([m for r in runs for m in r["frame_ms"]])
    s["frame_stages_ms"] = {stage: percentiles([m for r in runs for m in r["frame_stages"][stage]])
                            for stage in FRAME_STAGES}
    s["finetune_stages_s"] = {"features": percentiles([r["finetune"]["features_s"] for r in runs]),
                              "fit": percentiles([r["finetune"]["fit_s"] for r in runs])}
    s["suggest_hits"] = int(sum(r["suggest_hit"] for r in runs))
    s["suggest_trials"] = len(runs)
    s["suggest_hit_rate"] = s["suggest_hits"] / max(1, len(runs))
    s["suggest_chance"] = float(np.mean([min(1.0, 3 / max(1, len(r["ious"]) - 1)) for r in runs]))
    if len(seqs) > 2:
        d = [r["gt_init"]["difficulty"] for r in seqs.values()]
        j = [r["gt_init"]["j"] for r in seqs.values()]
        s["difficulty_j_corr"] = round(float(np.corrcoef(d, j)[0, 1]), 3)
    else:
        s["difficulty_j_corr"] = None
    if all("clicks" in r for r in seqs.values()):
        s["j_clicks"] = {str(k): float(np.mean([r["clicks"][str(k)]["j"] for r in seqs.values()])) for k in CLICKS_INIT}
        s["j_clicks_minus_gt"] = {k: v - s["j_gt_init"] for k, v in s["j_clicks"].items()}
    if all("fix" in r for r in seqs.values()):
        s["fix_before"] = float(np.mean([r["fix"]["before"] for r in seqs.values()]))
        s["fix_iou"] = {m: {str(k): float(np.mean([r["fix"][m][k] for r in seqs.values()])) for k in CLICKS_FIX}
                        for m in ("ours", "grabcut")}
        s["fix_gain"] = {m: {k: v - s["fix_before"] for k, v in s["fix_iou"][m].items()} for m in ("ours", "grabcut")}
    if all("full_finetune" in r for r in seqs.values()):
        f = [r["full_finetune"] for r in seqs.values()]
        s["full_finetune"] = {"j": float(np.mean([x["j"] for x in f])), "finetune_s": float(np.mean([x["finetune_s"] for x in f])),
                              "steps": f[0]["steps"], "batch": f[0]["batch"], "j_head_only": s["j_gt_init"],
                              "finetune_s_head_only": float(np.mean([r["gt_init"]["finetune_s"] for r in seqs.values()]))}
    return s


def run(args, *, osvos_network: Callable[[Path | None], object] | None = None) -> int:
    """Runs the benchmark of ``args`` (``add_arguments``).

    Args:
        osvos_network: for ``--full-finetune``: ``osvos_network(args.osvos_weights)`` returns a
            fresh torch OSVOS network (backbone + head, ``net(images, priors) -> logits``), its
            default weights when given None; called once per sequence.

    Raises:
        InvalidInput: no DAVIS2016 folder under the data root, or ``--full-finetune`` without
            ``osvos_network``.
    """
    import sys
    from dataclasses import replace

    import ivos
    from ivos.cli import DEFAULT_CLICK, DEFAULT_OSVOS
    from ivos.data_root import dataset_dir
    from ivos.evaluation.datasets import davis_sequences
    from ivos.ops.crf import parse_crf_params
    from ivos.settings import PropagationSettings

    if args.full_finetune and osvos_network is None:
        raise ivos.InvalidInput("--full-finetune needs the torch OSVOS network of ivos.export, which ivos-bench does "
                                "not import: run python -m training.bench_video --full-finetune ... from a checkout")
    davis = dataset_dir("DAVIS2016", args.data_root)
    names = (args.sequences or davis_sequences(davis.parent, args.split))[:args.limit]
    osvos = ivos.load(args.osvos_bundle or DEFAULT_OSVOS, backend=args.backend, threads=args.threads)
    clicker = None if args.no_clicks else ivos.load(args.click_bundle or DEFAULT_CLICK, backend=args.backend,
                                                     threads=args.threads)
    cfg = None  # the recipe's (per mode) unless --steps
    if args.steps is not None:
        recipe = PropagationSettings.resolve(osvos.bundle, propagation=args.propagation, mode=args.mode,
                                             threads=args.threads)
        cfg = replace(recipe.finetune, steps=args.steps)
    vp = ivos.VideoPredictor(osvos, clicker, propagation=args.propagation, mode=args.mode, finetune_config=cfg,
                             crf=args.crf,
                             crf_params=parse_crf_params(args.crf_param) if args.crf_param else None,
                             click_crf=args.click_crf, crop_context=_crop_context(args),
                             crf_max_pixels=_crf_max_pixels(args))
    image_predictor = None if clicker is None else ivos.ImagePredictor(clicker, crf=args.click_crf)
    prog = getattr(args, "prog", "ivos-bench video")  # python -m training.bench_video sets its own
    report = {"command": f"{prog} " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["video"] else sys.argv[1:]),
              "split": f"sequences {' '.join(names)}" if args.sequences else f"{args.split} split",
              "environment": {**_environment(args, osvos.backend), "crf_params": vp.settings.crf.params,
                              "crf_max_pixels": vp.settings.crf.max_pixels,
                              "crop_context": vp.settings.crop_context},
              "mode": vp.settings.mode, "memory": vars(vp.settings.memory) if vp.settings.use_memory else None,
              "finetune_config": {k: getattr(vp.settings.finetune, k) for k in vp.settings.finetune.__dataclass_fields__},
              "sequences": {}}
    for name in names:
        t0 = time.time()
        video, gt = read_sequence(davis, name, args.max_frames)
        r: dict = {}
        state = vp.init_state(video)
        frames = state.video
        vp.add_new_mask(state, 0, 1, gt[0])
        r["gt_init"] = run_propagation(vp, state, gt)
        if image_predictor is not None:
            r["fix"] = _fix_worst(vp, state, frames[r["gt_init"]["worst"]], gt[r["gt_init"]["worst"]],
                                  r["gt_init"]["worst"])
            r["clicks"] = {}
            for k, mask in _click_masks(image_predictor, frames[0], gt[0].astype(bool), CLICKS_INIT).items():
                st = vp.init_state(video)
                vp.add_new_mask(st, 0, 1, mask)
                run_k = run_propagation(vp, st, gt)
                run_k["init_iou"] = iou(mask, gt[0])
                r["clicks"][str(k)] = run_k
        if args.full_finetune:
            r["full_finetune"] = _full_finetune(osvos_network(args.osvos_weights), vp, osvos, frames, gt, args.full_steps,
                                                args.full_batch, args.threads, mean=osvos.bundle.mean,
                                                std=osvos.bundle.std)
        report["sequences"][name] = r
        log.warning("%s: J gt %.3f%s (%.0f s)", name, r["gt_init"]["j"],
                    "".join(f", {k} clicks {v['j']:.3f}" for k, v in r.get("clicks", {}).items()), time.time() - t0)
    if args.profile > 0:
        report["profile"] = profile_sequence(vp, davis, names[0], args.max_frames, args.profile)
    report["summary"] = summarize(report["sequences"])
    text = markdown(report)
    print(text)
    write_report(markdown=(args.markdown, text), json_data=(args.json, report))
    if args.plot:
        plot(report, args.plot)
    return 0
