"""``ivos``: the command line. Subcommand ``segment``: clicks on a video -> masks on every frame.

    ivos segment VIDEO --click X,Y[,FRAME] [--click ...] [--neg X,Y[,FRAME]] --out DIR

VIDEO is a video file (mp4/webm/avi/..., needs PyAV) or a folder of frames; ``demo`` names
the bundled demo clip (``ivos/data/demo_clip.mp4``, CC0). Clicks are (x, y) in original
pixels on frame FRAME (default 0). Writes into DIR:

* ``masks/<frame:05d>.png``: one 8-bit 0/255 mask per frame;
* ``masks.json``: the same masks as COCO RLE (uncompressed counts, column-major);
* ``overlay.mp4``: the video with the object tinted (H.264);
* ``sticker.webp``: the animated sticker, the object over transparency (APNG
  ``sticker.png`` when Pillow lacks WebP);
* ``summary.json``: timings, fine-tune seconds, the suggested frame to check, difficulty.

Progress bars (tqdm) live here only; the library logs.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from .errors import IvosError

PACKAGE = Path(__file__).resolve().parent
DEMO_CLIP = PACKAGE / "data" / "demo_clip.mp4"
DEFAULT_OSVOS = PACKAGE / "models" / "osvos-cpu"
DEFAULT_CLICK = PACKAGE / "models" / "ivos-cpu"
STICKER_MAX_FRAMES = 150
"""Longer videos get an evenly subsampled sticker (stickers are short loops; this also bounds
the memory the sticker encoder holds)."""


def _click(text: str) -> tuple[float, float, int]:
    parts = text.split(",")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
        frame = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y or X,Y,FRAME (numbers), got {text!r}") from None
    return x, y, frame


def _progress(iterable, **kwargs):
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a nicety, never a requirement
        return iterable
    return tqdm(iterable, **kwargs)


def add_segment_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file, folder of frames, or 'demo' (the bundled clip)")
    p.add_argument("--click", type=_click, action="append", default=[], metavar="X,Y[,FRAME]",
                   help="positive click (original pixels; frame default 0); repeatable")
    p.add_argument("--neg", type=_click, action="append", default=[], metavar="X,Y[,FRAME]",
                   help="negative click; repeatable")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--osvos-bundle", type=Path, default=DEFAULT_OSVOS, help="OSVOS model bundle folder")
    p.add_argument("--click-bundle", type=Path, default=DEFAULT_CLICK, help="click-refinement bundle folder")
    p.add_argument("--backend", default="auto", choices=("auto", "ort", "tensorrt", "torch"))
    p.add_argument("--mode", default="osvos+mask", choices=("osvos", "osvos+mask"),
                   help="osvos: frames independent (paper); osvos+mask: previous mask as a prior")
    p.add_argument("--crf", action=argparse.BooleanOptionalAction, default=True,
                   help="dense CRF on every propagated frame (default on: held-aside DAVIS train "
                   "sequences J 0.810 vs 0.724 without; see benchmarks/results/video_ablations.md)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of the engine (0 = one per core)")
    p.add_argument("--cache", type=int, default=32, help="decoded frames kept in memory")
    p.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    p.add_argument("--no-sticker", action="store_true", help="skip the animated sticker")


def segment(args: argparse.Namespace) -> int:
    import ivos
    from .export_masks import mask_bbox, write_overlay_video, write_png_masks, write_rle_json, write_sticker
    from .osvos_finetune import FinetuneConfig
    from .video_predictor import VideoPredictor

    if not args.click:
        raise ivos.InvalidInput("--click is required: give at least one positive click X,Y[,FRAME]")
    video = DEMO_CLIP if args.video == "demo" else Path(args.video)
    t0 = time.perf_counter()
    osvos = ivos.load(args.osvos_bundle, backend=args.backend, threads=args.threads)
    clicker = ivos.load(args.click_bundle, backend=args.backend, threads=args.threads)
    predictor = VideoPredictor(osvos, clicker, mode=args.mode, crf=args.crf,
                               finetune_config=FinetuneConfig(use_prior=args.mode == "osvos+mask", threads=args.threads))
    state = predictor.init_state(video, cache_size=args.cache)
    n = state.num_frames
    by_frame: dict[int, list[tuple[float, float, int]]] = {}
    for (x, y, f), label in [(c, 1) for c in args.click] + [(c, 0) for c in args.neg]:
        by_frame.setdefault(f, []).append((x, y, label))
    for f, clicks in sorted(by_frame.items()):
        predictor.add_new_points(state, f, [c[:2] for c in clicks], [c[2] for c in clicks])
    print(f"ivos: {video.name}: {n} frames {state.video.width}x{state.video.height}, backend {osvos.backend}; "
          f"fine-tuning on frame(s) {sorted(state.annotations)} ...", file=sys.stderr)
    report = predictor.finetune(state)
    frame_ms = []
    for result in _progress(predictor.propagate_in_video(state), total=n, desc="propagate", unit="frame"):
        if result.source == "propagated":
            frame_ms.append(result.timings.total_ms)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_png_masks(out / "masks", _progress(predictor.masks(state), total=n, desc="masks", unit="frame"))
    write_rle_json(out / "masks.json", predictor.masks(state), video=video.name, fps=state.video.fps)
    written = {"masks": str(out / "masks"), "rle": str(out / "masks.json")}
    if not args.no_overlay:
        pairs = ((state.video[i], m) for i, m in predictor.masks(state))
        write_overlay_video(out / "overlay.mp4", _progress(pairs, total=n, desc="overlay", unit="frame"),
                            fps=state.video.fps)
        written["overlay"] = str(out / "overlay.mp4")
    if not args.no_sticker:
        step = max(1, -(-n // STICKER_MAX_FRAMES))
        union = np.zeros((state.video.height, state.video.width), bool)
        for _, m in predictor.masks(state):
            union |= m.astype(bool)
        box = mask_bbox(union) if union.any() else [0, 0, state.video.width, state.video.height]
        pairs = ((state.video[i], state.mask(i)) for i in range(0, n, step))
        sticker = write_sticker(out / "sticker.webp", _progress(pairs, total=-(-n // step), desc="sticker"),
                                box=box, fps=state.video.fps / step)
        written["sticker"] = str(sticker)
    suggestion = predictor.suggest_frame(state) if len(state.annotations) < n else None
    difficulty = predictor.difficulty(state)
    summary = {
        "video": str(video), "frames": n, "backend": osvos.backend, "mode": args.mode,
        "annotated_frames": sorted(state.annotations),
        "finetune_s": round(report.seconds, 2),
        "frame_ms_p50": round(float(np.median(frame_ms)), 1) if frame_ms else None,
        "suggested_frame": None if suggestion is None else suggestion.frame_idx,
        "difficulty": round(difficulty.score, 4), "image_motion": round(difficulty.image_motion, 4),
        "total_s": round(time.perf_counter() - t0, 2), "outputs": written,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivos", description="interactive video object segmentation")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    add_segment_arguments(sub.add_parser("segment", help="segment an object in a video from clicks",
                                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return segment(args)
    except IvosError as e:  # a clear one-line message, not a traceback
        print(f"ivos: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
