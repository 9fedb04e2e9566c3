"""``ivos``: the command line. Subcommand ``segment``: clicks on a video -> masks on every frame.

    ivos segment VIDEO --click X,Y[,FRAME][:OBJ] [--click ...] [--neg X,Y[,FRAME][:OBJ]] --out DIR

VIDEO is a video file (mp4/webm/avi/..., needs PyAV) or a folder of frames; ``demo`` names
the bundled demo clip (``ivos/data/demo_clip.mp4``, CC0). Clicks are (x, y) in original
pixels on frame FRAME (default 0), on object OBJ (an id 1..255, default 1: several objects
are segmented together, each given at least one positive --click; no pixel goes to two
objects). Writes into DIR the ``--format``s asked for (comma-separated or repeated; default
``png,rle,overlay,sticker``), files named by the frames' names (a folder's file names without
suffix, else the zero-padded index ``00012``):

* ``png``: ``masks/<name>.png``, one 8-bit 0/255 (H, W) mask per frame (several objects:
  ``masks/<obj>/<name>.png``, one folder per object);
* ``rle``: ``masks.json``, the same masks as COCO RLE (uncompressed counts, column-major;
  several objects: ``masks_<obj>.json`` per object);
* ``coco``: ``coco.json``, a COCO data set (images, annotations with compressed RLE, categories;
  one annotation per object and frame, ``track_id`` the object id);
* ``palette``: ``palette/<name>.png``, DAVIS-style indexed PNGs (0 background, k object k);
* ``polygons``: ``polygons.json``, each object's contours (holes marked) and COCO polygons;
* ``cutouts``: ``cutouts/<name>.png``, the full frame as RGBA with the mask (the union of
  the objects) as alpha;
* ``overlay``: ``overlay.mp4``, the video with the objects (their union) tinted (H.264);
* ``sticker``: ``sticker.webp``, the animated sticker, the objects (their union) over
  transparency (APNG ``sticker.png`` when Pillow lacks WebP; at most 150 frames, evenly
  subsampled);
* ``webm``: ``sticker.webm``, the sticker as VP9 video with alpha, every frame (decode with
  the libvpx-vp9 decoder: FFmpeg's native vp9 decoder drops the alpha);
* ``summary.json`` (always): timings, fine-tune seconds, the suggested frame (and object) to
  check, difficulty, and ``outputs``: the files written.

``--feather PX`` gives the sticker, ``sticker.webm`` and the cut-outs a soft alpha edge over
about PX pixels (0 = hard). ``--no-overlay`` / ``--no-sticker`` drop ``overlay`` / ``sticker``
from the formats. The formats are described in ``ivos.formats.mask_files`` and ``ivos.formats.annotations``.

``overlay`` and ``webm`` need PyAV (the ``video`` extra), as does reading a video file; without
it a folder of frames still works: the default ``overlay`` is then skipped with a notice.
Without torch, ``--finetune auto`` propagates with the parent network and says so.
"""
# Progress bars (tqdm) live here only; the library logs.
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
DEFAULT_OSVOS = PACKAGE / "models" / "osvos-lite0"
DEFAULT_CLICK = PACKAGE / "models" / "ivos-lite0"
STICKER_MAX_FRAMES = 150
"""Longer videos get an evenly subsampled sticker (stickers are short loops; this also bounds
the memory the sticker encoder holds)."""


MAX_CLI_OBJ_ID = 255
"""Largest object id of ``--click ...:OBJ`` (the palette PNGs hold ids 1..255)."""


def _click(text: str) -> tuple[float, float, int, int]:
    """--click / --neg value X,Y[,FRAME][:OBJ] -> (x, y, frame, obj)."""
    point, _, obj_text = text.partition(":")
    parts = point.split(",")
    try:
        if len(parts) not in (2, 3) or (_ and not obj_text):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
        frame = int(parts[2]) if len(parts) == 3 else 0
        obj = int(obj_text) if obj_text else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y[,FRAME][:OBJ] (numbers), got {text!r}") from None
    if not 1 <= obj <= MAX_CLI_OBJ_ID:
        raise argparse.ArgumentTypeError(f"object id in {text!r} must be 1..{MAX_CLI_OBJ_ID}, got {obj}")
    return x, y, frame, obj


def _progress(iterable, **kwargs):
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a nicety, never a requirement
        return iterable
    return tqdm(iterable, **kwargs)


def _progress_callback(total: int, desc: str, unit: str):
    """A ``progress(done, total)`` callback drawing one tqdm bar (None without tqdm)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar = tqdm(total=total, desc=desc, unit=unit, leave=False)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)
        if done >= _total:
            bar.close()
    return update


class _FinetuneBars:
    """Progress of ``VideoPredictor.finetune``: one bar for the feature pass, one for the steps."""

    def __init__(self, frames: list[int], obj_id: int = 1):
        print(f"ivos: fine-tuning OSVOS for object {obj_id} on frame(s) {frames}", file=sys.stderr)
        self._stage, self._update = None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self._stage = stage
            desc = "fine-tune: features" if stage == "features" else "fine-tune: steps"
            self._update = _progress_callback(total, desc, "example" if stage == "features" else "step")
        if self._update is not None:
            self._update(done, total)


def _check_out_folder(out: Path) -> None:
    """Fails before any work when ``--out`` cannot become the output folder."""
    from .errors import InvalidInput

    for parent in [out, *out.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidInput(f"--out {out}: {parent} exists and is not a folder")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidInput(f"--out {out} cannot be created: {e.strerror}") from None
    probe = out / ".ivos-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InvalidInput(f"--out {out} is not writable: {e.strerror}") from None


def _check_clicks(args: argparse.Namespace, video) -> None:
    """Every --click/--neg inside its frame and on an existing frame, before any model loads."""
    from ._validate import image_points
    from .errors import InvalidInput

    for flag, clicks in (("--click", args.click), ("--neg", args.neg)):
        for x, y, frame, obj in clicks:
            label = f"{flag} {x:g},{y:g},{frame}" + ("" if obj == 1 else f":{obj}")
            video.check_index(frame, f"{label}: frame")
            image_points(label, [[x, y]], video.height, video.width)
    negative_only = sorted({c[3] for c in args.neg} - {c[3] for c in args.click})
    if negative_only:
        raise InvalidInput(f"object(s) {negative_only} have only --neg clicks: give each object at least one "
                           "positive --click X,Y[,FRAME]:OBJ")


def _finetune_wanted(choice: str) -> bool:
    """--finetune auto|on|off -> whether to fine-tune; auto says so when torch is missing."""
    import importlib.util

    from .errors import BackendUnavailable

    have_torch = importlib.util.find_spec("torch") is not None
    if choice == "on" and not have_torch:
        raise BackendUnavailable("--finetune on needs torch: pip install 'ivos[export]' (after pip install "
                                 "torch==2.13.0), or --finetune off to propagate with the parent network")
    if choice == "auto" and not have_torch:
        print("ivos: torch is not installed, so OSVOS is not fine-tuned on your clicks: propagating with the "
              "parent network (less accurate). pip install 'ivos[export]' to fine-tune.", file=sys.stderr)
    return choice == "on" or (choice == "auto" and have_torch)


def add_segment_arguments(p: argparse.ArgumentParser) -> None:
    from .settings import PROPAGATIONS  # here: ivos imports numpy and the runtime, not needed for --help elsewhere

    p.add_argument("video", help="video file, folder of frames, or 'demo' (the bundled clip)")
    p.add_argument("--click", type=_click, action="append", default=[], metavar="X,Y[,FRAME][:OBJ]",
                   help="positive click (original pixels; frame default 0; object id 1..255, default 1); "
                   "repeatable")
    p.add_argument("--neg", type=_click, action="append", default=[], metavar="X,Y[,FRAME][:OBJ]",
                   help="negative click; repeatable")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (created; files of an earlier run in it are replaced)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of a folder of frames (default 25), or to override a video file's")
    p.add_argument("--finetune", default="auto", choices=("auto", "on", "off"),
                   help="fine-tune OSVOS on the annotated frame (needs torch: the 'export' extra). auto: when "
                   "torch is installed, else propagate with the parent network and say so")
    p.add_argument("--osvos-bundle", type=Path, default=DEFAULT_OSVOS, help="OSVOS model bundle folder")
    p.add_argument("--click-bundle", type=Path, default=DEFAULT_CLICK, help="click-refinement bundle folder")
    p.add_argument("--backend", default="auto", choices=("auto", "ort", "tensorrt", "torch"))
    p.add_argument("--mode", default=None, choices=("memory", "osvos", "osvos+mask"),
                   help="default: the propagation recipe's (memory for the shipped bundle). osvos: frames "
                   "independent (paper); osvos+mask: previous mask as a prior, the whole network per object; memory: "
                   "one trunk run per frame for all objects, a head per object (flow warp and memory read per the "
                   "recipe)")
    p.add_argument("--adapt-every", type=int, default=None, metavar="N",
                   help="online adaptation: every N frames tune the heads on the latest confident frames "
                   "(default: the bundle's; benchmarks/results/video_cv.md)")
    p.add_argument("--propagation", default="bundle", choices=PROPAGATIONS,
                   help="named propagation recipe: bundle (the OSVOS bundle's, default) or classic (the "
                   "propagation before the memory mode became the default)")
    p.add_argument("--crf", action=argparse.BooleanOptionalAction, default=None,
                   help="dense CRF on every propagated frame (default: the OSVOS bundle's, on for the shipped "
                   "ones: held-aside DAVIS train sequences J 0.810 vs 0.724 without; see "
                   "benchmarks/results/video_ablations.md)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads of every pool: ONNX Runtime, fine-tuning, CRF (0 = one per usable CPU; "
                   "benchmarks/results/threads.md)")
    p.add_argument("--cache", type=int, default=32, help="decoded frames kept in memory")
    p.add_argument("--format", dest="formats", type=_formats, action="append", default=None, metavar="F[,F...]",
                   help=f"outputs to write, comma-separated or repeated, among {', '.join(OUTPUT_FORMATS)} "
                   f"(default {','.join(DEFAULT_FORMATS)}; see the list above)")
    p.add_argument("--feather", type=_feather, default=0.0, metavar="PX",
                   help="soft alpha edge of the sticker, sticker.webm and cut-outs over about PX pixels (0 = hard)")
    p.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4 (drops 'overlay' from --format)")
    p.add_argument("--no-sticker", action="store_true", help="skip the animated sticker (drops 'sticker' from --format)")


OUTPUT_FORMATS = ("png", "rle", "coco", "palette", "polygons", "cutouts", "webm", "sticker", "overlay")
DEFAULT_FORMATS = ("png", "rle", "overlay", "sticker")


def _formats(text: str) -> list[str]:
    """--format value: comma-separated names among OUTPUT_FORMATS."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in OUTPUT_FORMATS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown format {', '.join(map(repr, unknown)) or repr(text)}: "
                                         f"choose from {', '.join(OUTPUT_FORMATS)}")
    return names


def _feather(text: str) -> float:
    """--feather value: a finite number of pixels >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of pixels >= 0, got {text!r}")
    return value


NEEDS_PYAV = ("overlay", "webm")
"""Formats written through PyAV (FFmpeg encoders)."""


def _output_formats(args: argparse.Namespace) -> list[str]:
    """The formats to write: --format (default DEFAULT_FORMATS) less --no-overlay / --no-sticker.
    Without PyAV a default ``overlay`` is dropped with a notice; an asked-for PyAV format fails
    here, before any work."""
    import importlib.util

    from .errors import BackendUnavailable

    chosen = [f for group in (args.formats or [DEFAULT_FORMATS]) for f in group]
    dropped = ({"overlay"} if args.no_overlay else set()) | ({"sticker"} if args.no_sticker else set())
    formats = [f for f in dict.fromkeys(chosen) if f not in dropped]
    if importlib.util.find_spec("av") is None:
        if args.formats:
            missing = [f for f in formats if f in NEEDS_PYAV]
            if missing:
                raise BackendUnavailable(f"--format {','.join(missing)} needs PyAV: pip install 'ivos[video]'")
        elif "overlay" in formats:
            print("ivos: PyAV is not installed: skipping overlay.mp4 (pip install 'ivos[video]' to write it)",
                  file=sys.stderr)
            formats.remove("overlay")
    return formats


def _frame_suffix(video: Path, names: list[str]) -> str:
    """The file suffix of a folder's frames (for coco.json's file names); ".jpg" for video files."""
    if video.is_dir() and names:
        for path in video.iterdir():
            if path.stem == names[0] and path.suffix:
                return path.suffix
    return ".jpg"


def _union(per_object: dict[int, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W): the union of a frame's object masks (zeros without objects)."""
    out = np.zeros(shape, np.uint8)
    for m in per_object.values():
        out |= m.astype(np.uint8)
    return out


def _write_outputs(args: argparse.Namespace, formats: list[str], predictor, state, video: Path) -> dict[str, str]:
    """Writes ``formats`` into ``args.out``; returns {format key: path written}. One object:
    the single-object layout (``masks/<name>.png``, ``masks.json``); several: per object
    (``masks/<obj>/<name>.png``, ``masks_<obj>.json``). The combined formats (coco, palette,
    polygons) hold every object; cut-outs, overlay, sticker and webm show their union."""
    from .formats import annotations as ef
    from .formats.mask_files import write_overlay_video, write_png_masks, write_rle_json, write_sticker
    from .formats.rle import mask_bbox

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    n, fps = state.num_frames, state.video.fps
    names = state.video.frame_names
    shape = (state.video.height, state.video.width)
    obj_ids = [k for k in state.obj_ids if state.objects[k].annotations]
    single = len(obj_ids) == 1

    def per_object(desc: str):  # (frame_idx, {obj_id: mask}), overlap-resolved
        return _progress(predictor.masks(state), total=n, desc=desc, unit="frame")

    def union(desc: str):
        return ((i, _union(objs, shape)) for i, objs in per_object(desc))

    def frame_masks(desc: str):
        return (ef.FrameMasks(i, names[i], objs) for i, objs in per_object(desc))

    written: dict[str, str] = {}
    if "png" in formats:
        for k in obj_ids:
            folder = out / "masks" if single else out / "masks" / str(k)
            write_png_masks(folder, _progress(predictor.masks(state, k), total=n, desc=f"masks {k}", unit="frame"),
                            names=names)
        written["masks"] = str(out / "masks")
    if "rle" in formats:
        for k in obj_ids:
            path = out / ("masks.json" if single else f"masks_{k}.json")
            write_rle_json(path, predictor.masks(state, k), video=video.name, fps=fps, names=names)
            written["rle" if single else f"rle_{k}"] = str(path)
    if "coco" in formats:
        ef.write_coco_json(out / "coco.json", frame_masks("coco"), video=video.name,
                           image_suffix=_frame_suffix(video, names))
        written["coco"] = str(out / "coco.json")
    if "palette" in formats:
        ef.write_palette_pngs(out / "palette", frame_masks("palette"))
        written["palette"] = str(out / "palette")
    if "polygons" in formats:
        ef.write_polygons_json(out / "polygons.json", frame_masks("polygons"), video=video.name)
        written["polygons"] = str(out / "polygons.json")
    if "cutouts" in formats:
        items = ((names[i], state.video[i], m) for i, m in union("cut-outs"))
        ef.write_cutouts(out / "cutouts", items, feather=args.feather)
        written["cutouts"] = str(out / "cutouts")
    if "overlay" in formats:
        pairs = ((state.video[i], m) for i, m in union("overlay"))
        write_overlay_video(out / "overlay.mp4", pairs, fps=fps)
        written["overlay"] = str(out / "overlay.mp4")
    if "sticker" in formats or "webm" in formats:
        everywhere = np.zeros(shape, bool)
        for _, m in ((i, _union(objs, shape)) for i, objs in predictor.masks(state)):
            everywhere |= m.astype(bool)
        box = mask_bbox(everywhere) if everywhere.any() else [0, 0, state.video.width, state.video.height]
        if "sticker" in formats:
            step = max(1, -(-n // STICKER_MAX_FRAMES))
            pairs = ((state.video[i], _union(predictor.object_masks(state, i), shape)) for i in range(0, n, step))
            sticker = write_sticker(out / "sticker.webp", _progress(pairs, total=-(-n // step), desc="sticker"),
                                    box=box, fps=fps / step, feather=args.feather)
            written["sticker"] = str(sticker)
        if "webm" in formats:
            pairs = ((state.video[i], m) for i, m in union("sticker.webm"))
            ef.write_sticker_webm(out / "sticker.webm", pairs, box=box, fps=fps, feather=args.feather)
            written["webm"] = str(out / "sticker.webm")
    return written


def segment(args: argparse.Namespace) -> int:
    import ivos

    from .video.frames import open_video
    from .video.predictor import VideoPredictor

    if not args.click:
        raise ivos.InvalidInput("--click is required: give at least one positive click X,Y[,FRAME][:OBJ]")
    video = DEMO_CLIP if args.video == "demo" else Path(args.video)
    t0 = time.perf_counter()
    _check_out_folder(args.out)
    formats = _output_formats(args)
    source = open_video(video, cache_size=args.cache, fps=args.fps)
    source.verify(_progress_callback(len(source), "check frames", "frame"))
    _check_clicks(args, source)
    osvos = ivos.load(args.osvos_bundle, backend=args.backend, threads=args.threads)
    clicker = ivos.load(args.click_bundle, backend=args.backend, threads=args.threads)
    predictor = VideoPredictor(osvos, clicker, mode=args.mode, crf=args.crf, adapt_every=args.adapt_every,
                               propagation=args.propagation)
    # the recipe's fine-tuning (none when it has 0 steps), if wanted and torch is there to do it
    finetune = predictor.settings.finetune.steps > 0 and _finetune_wanted(args.finetune)
    state = predictor.init_state(source)
    n = state.num_frames
    by_target: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    for (x, y, f, obj), label in [(c, 1) for c in args.click] + [(c, 0) for c in args.neg]:
        by_target.setdefault((obj, f), []).append((x, y, label))
    for (obj, f), clicks in sorted(by_target.items()):
        predictor.add_new_points(state, f, obj, [c[:2] for c in clicks], [c[2] for c in clicks])
    obj_ids = state.obj_ids
    print(f"ivos: {video.name}: {n} frames {state.video.width}x{state.video.height}, "
          f"{len(obj_ids)} object(s) {obj_ids}, backend {osvos.backend}", file=sys.stderr)
    reports = {}
    if finetune:
        for k in obj_ids:
            track = state.objects[k]
            reports[k] = predictor.finetune(state, k, progress=_FinetuneBars(sorted(track.annotations), k))
    frame_ms = []
    propagation = predictor.propagate_in_video(state, finetune=finetune)
    for result in _progress(propagation, total=n, desc="propagate", unit="frame"):
        if "propagated" in result.sources.values():
            frame_ms.append(result.timings.total_ms)

    out: Path = args.out
    written = _write_outputs(args, formats, predictor, state, video)
    annotated = sorted({i for k in obj_ids for i in state.objects[k].annotations})
    fully_annotated = all(len(state.objects[k].annotations) == n for k in obj_ids)
    suggestion = None if fully_annotated else predictor.suggest_frame(state)
    difficulty = predictor.difficulty(state)
    summary = {
        "video": str(video), "frames": n, "backend": osvos.backend, "propagation": args.propagation, "mode": predictor.settings.mode,
        "objects": obj_ids, "annotated_frames": annotated,
        "finetuned": bool(reports),
        "finetune_s": round(sum(r.seconds for r in reports.values()), 2) if reports else None,
        "frame_ms_p50": round(float(np.median(frame_ms)), 1) if frame_ms else None,
        "suggested_frame": None if suggestion is None else suggestion.frame_idx,
        "suggested_object": None if suggestion is None else suggestion.obj_id,
        "difficulty": round(difficulty.score, 4), "image_motion": round(difficulty.image_motion, 4),
        "total_s": round(time.perf_counter() - t0, 2), "outputs": written,
    }
    if len(obj_ids) > 1:
        summary["per_object"] = {str(k): {
            "annotated_frames": sorted(state.objects[k].annotations),
            "finetune_s": round(reports[k].seconds, 2) if k in reports else None} for k in obj_ids}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    from ._cli_help import plain, version

    parser = argparse.ArgumentParser(prog="ivos", description="interactive video object segmentation")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_segment_arguments(sub.add_parser("segment", help="segment an object in a video from clicks",
                                         description=plain(__doc__),
                                         formatter_class=argparse.RawDescriptionHelpFormatter))
    from .serve import cli as serve_cli  # argparse only: --help works without the serve extra

    serve_cli.add_serve_arguments(sub.add_parser("serve", help="run the HTTP server (ivos[serve])",
                                                 description=plain(serve_cli.__doc__),
                                                 formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_cli.serve(args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return segment(args)
    except IvosError as e:  # a clear one-line message, not a traceback
        print(f"ivos: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
