"""Writing a video segmentation out: PNG masks, COCO RLE JSON, an overlay preview video and an
animated sticker (the object cut out over transparency).

RLE format (``rle_encode``): COCO's *uncompressed* RLE, ``{"size": [H, W], "counts": [...]}``:
the mask flattened in column-major (Fortran) order, run lengths alternating background /
foreground and starting with background (a leading 0 when the first pixel is foreground).
``pycocotools.mask.frPyObjects`` reads it; we write our own encoder to stay dependency-free.

Everything here writes files for one video; masks are uint8 (H, W) in {0, 1}.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ._validate import describe
from .errors import BackendUnavailable, InvalidInput

log = logging.getLogger("ivos")

OVERLAY_RGB = (40, 220, 90)
"""Tint of the object in the overlay preview."""


def rle_encode(mask: np.ndarray) -> dict:
    """(H, W) {0,1} mask -> COCO uncompressed RLE dict (see the module docstring)."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise InvalidInput(f"mask must be a 2-D (H, W) array, got {describe(mask)}")
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def rle_decode(rle: dict) -> np.ndarray:
    """COCO uncompressed RLE dict -> (H, W) uint8 {0,1} mask."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = np.asarray(rle["counts"], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"rle must be {{'size': [H, W], 'counts': [ints]}}, got {describe(rle)}") from None
    if counts.sum() != h * w or (counts < 0).any():
        raise InvalidInput(f"rle counts sum to {int(counts.sum())}, expected H*W = {h * w}")
    values = np.arange(len(counts)) % 2
    flat = np.repeat(values.astype(np.uint8), counts)
    return flat.reshape((w, h)).T.copy()


def mask_bbox(mask: np.ndarray) -> list[int]:
    """[x, y, width, height] of the mask's pixels ([0, 0, 0, 0] when empty)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def write_png_masks(folder: Path, masks: Iterable[tuple[int, np.ndarray]]) -> int:
    """Writes ``<folder>/<frame:05d>.png`` (8-bit, 0 / 255) per (frame_idx, mask); returns the count."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for idx, mask in masks:
        Image.fromarray(mask.astype(np.uint8) * np.uint8(255)).save(folder / f"{idx:05d}.png", optimize=False)
        n += 1
    return n


def write_rle_json(path: Path, masks: Iterable[tuple[int, np.ndarray]], *, video: str, fps: float) -> None:
    """One JSON file: video metadata + per frame {frame_idx, segmentation (RLE), area, bbox}."""
    frames = [{"frame_idx": int(i), "segmentation": rle_encode(m), "area": int(m.sum()), "bbox": mask_bbox(m)}
              for i, m in masks]
    if not frames:
        raise InvalidInput("masks is empty: nothing to write")
    h, w = frames[0]["segmentation"]["size"]
    doc = {"video": video, "height": h, "width": w, "fps": fps,
           "encoding": "COCO RLE, uncompressed counts, column-major, starting with background",
           "frames": frames}
    path.write_text(json.dumps(doc) + "\n")


def overlay(frame: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8: the frame with the object tinted and its outline drawn."""
    out = frame.astype(np.float32)
    m = mask.astype(bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.array(OVERLAY_RGB, np.float32)
    edge = m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))
    out[edge] = OVERLAY_RGB
    return out.astype(np.uint8)


def write_overlay_video(path: Path, frames: Iterable[tuple[np.ndarray, np.ndarray]], *, fps: float) -> int:
    """H.264 mp4 of overlays from (frame, mask) pairs (PyAV). Odd sizes are padded by one
    pixel (yuv420p needs even sides). Returns the frame count."""
    try:
        import av
    except ImportError:
        raise BackendUnavailable("writing the overlay video needs PyAV: pip install 'ivos[video]'") from None
    from fractions import Fraction

    n = 0
    with av.open(str(path), "w") as container:
        stream = None
        for frame, mask in frames:
            img = overlay(frame, mask)
            h, w = img.shape[:2]
            if h % 2 or w % 2:
                img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height = img.shape[1], img.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "26", "preset": "veryfast"}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            n += 1
        if stream is not None:
            container.mux(stream.encode(None))
    return n


def write_sticker(path: Path, frames: Iterable[tuple[np.ndarray, np.ndarray]], *, box: Sequence[int],
                  fps: float, max_side: int = 512) -> Path:
    """Animated sticker: the object over transparency, cropped to ``box`` ([x, y, w, h], e.g.
    ``mask_bbox`` of the union of all masks) and scaled so the longer side is at most
    ``max_side`` px. Frames are cropped as they stream in, so only the small RGBA images are
    held (pass a subsample for very long videos). Animated WebP (RGBA) when Pillow has WebP,
    else APNG (``path`` gets the matching suffix). Returns the path written."""
    from PIL import Image, features

    x, y, bw, bh = (int(v) for v in box)
    if bw <= 0 or bh <= 0:
        raise InvalidInput(f"box must have a positive width and height, got {list(box)}")
    scale = min(1.0, max_side / max(bw, bh))
    size = (max(1, round(bw * scale)), max(1, round(bh * scale)))
    images = []
    for frame, mask in frames:
        alpha = mask[y:y + bh, x:x + bw].astype(np.uint8) * np.uint8(255)
        rgba = np.dstack([frame[y:y + bh, x:x + bw], alpha])
        images.append(Image.fromarray(rgba, "RGBA").resize(size, Image.LANCZOS))
    if not images:
        raise InvalidInput("frames is empty: a sticker needs at least one frame")
    duration = max(1, round(1000 / fps))
    if features.check("webp"):
        out = path.with_suffix(".webp")
        images[0].save(out, save_all=True, append_images=images[1:], duration=duration, loop=0,
                       quality=80, method=4, exact=False)
    else:
        out = path.with_suffix(".png")
        images[0].save(out, save_all=True, append_images=images[1:], duration=duration, loop=0, format="PNG")
    return out
