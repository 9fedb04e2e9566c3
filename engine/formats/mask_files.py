"""Writing a video segmentation out: PNG masks, COCO RLE JSON, an overlay preview video and an
animated sticker (the object cut out over transparency).

Sticker alpha (``sticker_images``, also used by the cut-outs and the WebM sticker of
``annotation_formats``): alpha is the mask, or with ``feather=PX`` a ramp from 0 to 1 over about PX
pixels centred on the mask edge (a Gaussian blur of the mask, sigma PX/4, truncated at PX/2,
so pixels farther than PX/2 from the edge keep alpha 0 or 1). No background colour leaks into
the edge: pixels outside the mask that the feather makes visible take the colour of the
nearest object pixels (``bleed_colours``), scaling is done on premultiplied colours, and the
colours are bled a few pixels further out under zero alpha so that the encoders' chroma
subsampling (WebP, VP9 4:2:0) mixes object colours, not the background, into the edge.

Everything here writes files for one video; masks are uint8 (H, W) in {0, 1} (nonzero =
object); frames are (H, W, 3) uint8 RGB.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .._validate import describe
from ..errors import BackendUnavailable, InvalidInput
from .rle import mask_bbox, rle_encode

log = logging.getLogger("ivos")

OVERLAY_RGB = (40, 220, 90)
"""Tint of the object in the overlay preview."""
BLEED_PX = 4
"""How far (px) object colours are bled outward under zero alpha in stickers and cut-outs."""


def write_png_masks(folder: Path, masks: Iterable[tuple[int, np.ndarray]], *,
                    names: Sequence[str] | None = None) -> int:
    """Writes ``<folder>/<name>.png`` (8-bit, 0 / 255) per (frame_idx, mask); ``names[frame_idx]``
    names the file (default: the zero-padded index, ``00012.png``). Returns the count."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for idx, mask in masks:
        name = f"{idx:05d}" if names is None else names[idx]
        Image.fromarray(mask.astype(np.uint8) * np.uint8(255)).save(folder / f"{name}.png", optimize=False)
        n += 1
    return n


def write_rle_json(path: Path, masks: Iterable[tuple[int, np.ndarray]], *, video: str, fps: float,
                   names: Sequence[str] | None = None) -> None:
    """One JSON file: video metadata + per frame {frame_idx, segmentation (RLE), area, bbox}
    (+ ``name``, ``names[frame_idx]``, when names are given)."""
    frames = [{"frame_idx": int(i), **({} if names is None else {"name": names[i]}),
               "segmentation": rle_encode(m), "area": int(m.sum()), "bbox": mask_bbox(m)}
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


def feather_radius(feather: float) -> int:
    """How far (px) alpha reaches beyond the mask edge for ``feather`` px (0 for a hard edge)."""
    return math.ceil(feather / 2) if feather > 0 else 0


def check_feather(feather) -> float:
    """``feather`` as a float >= 0 (px), else ``InvalidInput``."""
    try:
        value = float(feather)
    except (TypeError, ValueError):
        raise InvalidInput(f"feather must be a number of pixels >= 0, got {describe(feather)}") from None
    if not math.isfinite(value) or value < 0 or isinstance(feather, bool):
        raise InvalidInput(f"feather must be a number of pixels >= 0, got {feather!r}")
    return value


def _convolve_axis(a: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """1-D convolution of a 2-D float array along ``axis`` (edges replicated; same size)."""
    r = len(kernel) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    padded = np.pad(a, pad, mode="edge")
    n = a.shape[axis]
    out = np.zeros_like(a)
    for i, k in enumerate(kernel):
        out += k * (padded[i:i + n] if axis == 0 else padded[:, i:i + n])
    return out


def feather_alpha(mask: np.ndarray, feather: float = 0.0) -> np.ndarray:
    """(H, W) float32 alpha in [0, 1] from an (H, W) mask: the mask itself for ``feather=0``,
    else a ramp over about ``feather`` px centred on the mask edge (Gaussian blur, sigma
    ``feather / 4``, truncated at ``feather_radius``; the frame border is not an edge)."""
    feather = check_feather(feather)
    alpha = (np.asarray(mask) != 0).astype(np.float32)
    r = feather_radius(feather)
    if r == 0:
        return alpha
    sigma = feather / 4
    kernel = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    alpha = _convolve_axis(_convolve_axis(alpha, kernel, 0), kernel, 1)
    return np.clip(alpha, 0.0, 1.0)


def _box3(a: np.ndarray) -> np.ndarray:
    """Sum over each pixel's 3x3 neighbourhood (zeros outside), for (H, W) or (H, W, C)."""
    pad = [(1, 1), (1, 1)] + [(0, 0)] * (a.ndim - 2)
    p = np.pad(a, pad)
    rows = p[:-2] + p[1:-1] + p[2:]
    return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def bleed_colours(rgb: np.ndarray, known: np.ndarray, passes: int) -> tuple[np.ndarray, np.ndarray]:
    """Spreads the colours of the ``known`` pixels outward, one pixel ring per pass (each new
    pixel gets the mean of its known 3x3 neighbours). ``rgb`` (H, W, 3) float32, ``known`` (H, W)
    bool. Returns (rgb (H, W, 3) float32, known (H, W) bool: the pixels that now have a colour)."""
    rgb = np.array(rgb, dtype=np.float32)
    known = np.array(known, dtype=bool)
    for _ in range(passes):
        weight = known.astype(np.float32)
        count = _box3(weight)
        new = ~known & (count > 0)
        if not new.any():
            break
        sums = _box3(rgb * weight[..., None])
        rgb[new] = sums[new] / count[new, None]
        known |= new
    return rgb, known


def cutout_rgba(frame: np.ndarray, mask: np.ndarray, *, feather: float = 0.0, bleed: int = BLEED_PX) -> np.ndarray:
    """(H, W, 4) uint8 RGBA: ``frame`` (H, W, 3) uint8 with alpha from ``mask`` (H, W) (see
    ``feather_alpha``). Colours under the feathered edge and ``bleed`` px beyond it are the
    nearest object colours; farther transparent pixels are black (0, 0, 0, 0)."""
    mask = np.asarray(mask)
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[:2] != mask.shape or mask.ndim != 2:
        raise InvalidInput(f"frame must be (H, W, 3) and mask (H, W) of the same H, W; got frame "
                           f"{describe(frame)} and mask {describe(mask)}")
    alpha = feather_alpha(mask, feather)
    rgb, known = bleed_colours(frame.astype(np.float32), np.asarray(mask) != 0, feather_radius(feather) + bleed)
    rgb[~known] = 0
    return np.dstack([np.clip(rgb + 0.5, 0, 255), np.round(alpha * 255)]).astype(np.uint8)


def _resize_premultiplied(rgb: np.ndarray, alpha: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """LANCZOS resize of (H, W, 3) float32 colours and (H, W) float32 alpha in [0, 1] to
    ``size`` (width, height) on premultiplied colours, so transparent pixels add no colour."""
    from PIL import Image

    def resize(channel: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(np.ascontiguousarray(channel, np.float32), "F").resize(size, Image.LANCZOS))

    a = np.clip(resize(alpha), 0.0, 1.0)
    premultiplied = np.dstack([resize(rgb[..., c] * alpha) for c in range(3)])
    visible = a > 1e-3
    out = np.zeros_like(premultiplied)
    out[visible] = premultiplied[visible] / a[visible, None]
    return np.clip(out, 0, 255), a


def sticker_images(frames: Iterable[tuple[np.ndarray, np.ndarray]], *, box: Sequence[int], max_side: int = 512,
                   feather: float = 0.0) -> Iterator[np.ndarray]:
    """(h, w, 4) uint8 RGBA sticker frames from (frame (H, W, 3) uint8, mask (H, W)) pairs: the
    region ``box`` ([x, y, w, h]) grown by the feather's reach (clipped to the frame), scaled
    so the longer side is at most ``max_side`` px. Alpha and colours as in the module docstring."""
    x, y, bw, bh = (int(v) for v in box)
    if bw <= 0 or bh <= 0:
        raise InvalidInput(f"box must have a positive width and height, got {list(box)}")
    feather = check_feather(feather)
    r = feather_radius(feather)
    size = None
    for frame, mask in frames:
        x0, y0 = max(0, x - r), max(0, y - r)
        x1, y1 = min(frame.shape[1], x + bw + r), min(frame.shape[0], y + bh + r)
        if size is None:
            scale = min(1.0, max_side / max(x1 - x0, y1 - y0))
            size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        m = np.asarray(mask)[y0:y1, x0:x1]
        alpha = feather_alpha(m, feather)
        rgb, _ = bleed_colours(frame[y0:y1, x0:x1].astype(np.float32), m != 0, r)
        if size != (x1 - x0, y1 - y0):
            rgb, alpha = _resize_premultiplied(rgb, alpha, size)
        alpha8 = np.round(alpha * 255).astype(np.uint8)
        rgb, known = bleed_colours(rgb, alpha8 > 0, BLEED_PX)
        rgb[~known] = 0
        yield np.dstack([np.clip(rgb + 0.5, 0, 255).astype(np.uint8), alpha8])


def write_sticker(path: Path, frames: Iterable[tuple[np.ndarray, np.ndarray]], *, box: Sequence[int],
                  fps: float, max_side: int = 512, feather: float = 0.0) -> Path:
    """Animated sticker: the object over transparency, cropped to ``box`` ([x, y, w, h], e.g.
    ``mask_bbox`` of the union of all masks) and scaled so the longer side is at most
    ``max_side`` px (``sticker_images``; ``feather`` px of soft edge, 0 = hard). Frames are
    cropped as they stream in, so only the small RGBA images are held (pass a subsample for
    very long videos). Animated WebP (RGBA) when Pillow has WebP, else APNG (``path`` gets
    the matching suffix). Returns the path written."""
    from PIL import Image, features

    images = [Image.fromarray(rgba, "RGBA")
              for rgba in sticker_images(frames, box=box, max_side=max_side, feather=feather)]
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
