"""Uploads checked by decoding, never by name: images (Pillow), frames (each an image of one
size) and video files (PyAV, every frame decoded once before the session exists).

Sizes are checked from the header before any pixel is decoded (a 100-megapixel PNG of a few KB
is refused without allocating it), then the whole file is decoded (a truncated or corrupt
file is refused). Files are stored under names the server chooses (``image.png``,
``frames/00003.jpg``, ``video``); nothing from the client becomes a path.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ApiError, limit_exceeded

IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tiff", "GIF": ".gif"}
"""Pillow formats accepted as images, with the suffix the stored file gets."""
FRAME_SUFFIXES = {".png", ".jpg", ".webp", ".bmp"}
"""Stored frame files that ``ivos.open_video`` reads from a folder as they are; other formats
(and images with an EXIF rotation) are stored re-encoded as PNG."""


@dataclass(frozen=True)
class Limits:
    """The upload limits (``ServeConfig``'s) a decoder checks."""

    max_image_pixels: int
    max_frames: int
    max_duration_s: float


def check_pixels(what: str, width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_image_pixels:
        raise limit_exceeded("max_image_pixels", f"{what} is {width}x{height} = {width * height:,} pixels, more than "
                             f"{limits.max_image_pixels:,}", flag="max-image-pixels", value=width * height)


def _open(data: bytes, what: str):
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ApiError(400, "empty_upload", f"{what} is empty (0 bytes)")
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise limit_exceeded("max_image_pixels", f"{what} is too large to decode: {e}",
                             flag="max-image-pixels") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ApiError(400, "not_an_image", f"{what} is not an image Pillow can read (PNG, JPEG, WebP, BMP, TIFF, "
                       f"GIF): {e}") from None
    if im.format not in IMAGE_FORMATS:
        raise ApiError(415, "unsupported_image_format", f"{what} is a {im.format} image: send PNG, JPEG, WebP, BMP, "
                       "TIFF or GIF")
    return im


def decode_image(data: bytes, limits: Limits, what: str = "image") -> tuple[np.ndarray, str, bool]:
    """(image (H, W, 3) uint8 RGB as displayed (EXIF rotation applied), Pillow format, whether
    the file's pixels needed rotating). ApiError 400/413/415 naming ``what``."""
    from PIL import Image, ImageOps

    im = _open(data, what)
    check_pixels(what, *im.size, limits)  # from the header: nothing decoded yet
    try:
        im.load()
        turned = im.getexif().get(0x0112, 1) not in (0, 1)  # EXIF orientation: shown rotated/mirrored
        rgb = np.asarray((ImageOps.exif_transpose(im) if turned else im).convert("RGB"))
    except Image.DecompressionBombError as e:
        raise limit_exceeded("max_image_pixels", f"{what}: {e}", flag="max-image-pixels") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data
        raise ApiError(400, "corrupt_image", f"{what} cannot be decoded (truncated or corrupt {im.format}): {e}") from None
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ApiError(400, "corrupt_image", f"{what} decodes to an empty image")
    return np.ascontiguousarray(rgb), im.format, bool(turned)


def store_image(folder: Path, data: bytes, limits: Limits, stem: str = "image") -> tuple[Path, np.ndarray]:
    """Decodes ``data`` and writes it to ``folder/<stem><suffix>`` (the original bytes, or a PNG
    of the decoded pixels when the file needed an EXIF rotation or is not a frame format).
    Returns (the file, the decoded (H, W, 3) uint8 image)."""
    image, fmt, turned = decode_image(data, limits, what=stem)
    suffix = IMAGE_FORMATS[fmt]
    folder.mkdir(parents=True, exist_ok=True)
    if turned or suffix not in FRAME_SUFFIXES:
        from PIL import Image

        path = folder / f"{stem}.png"
        Image.fromarray(image).save(path, compress_level=1)
    else:
        path = folder / f"{stem}{suffix}"
        path.write_bytes(data)
    return path, image


def load_image(path: Path) -> np.ndarray:
    """A stored image (``store_image``) as (H, W, 3) uint8 RGB, as it was decoded at upload."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(im).convert("RGB")))


def store_frames(folder: Path, files: list[bytes], limits: Limits) -> tuple[int, int, int]:
    """Decodes every frame (in upload order; all of one size) into ``folder/00000.<ext>`` ...
    Returns (count, height, width). ApiError naming the frame otherwise."""
    if not files:
        raise ApiError(400, "no_frames", "no frames: send the video as one 'video' file or several 'frames' files")
    if len(files) > limits.max_frames:
        raise limit_exceeded("max_frames", f"{len(files)} frames uploaded, more than {limits.max_frames}",
                             flag="max-frames", value=len(files))
    size = None
    for i, data in enumerate(files):
        _, image = store_image(folder, data, limits, stem=f"{i:05d}")
        if size is None:
            size = image.shape[:2]
        elif image.shape[:2] != size:
            raise ApiError(400, "frame_size_mismatch", f"frame {i} is {image.shape[1]}x{image.shape[0]}, frame 0 is "
                           f"{size[1]}x{size[0]}: every frame must have the same size")
    return len(files), size[0], size[1]


def client_message(error: Exception, path: Path) -> str:
    """The library's message for a stored upload, with the upload's server path (and its
    session folder) replaced by "the upload": internal paths never reach clients."""
    message = str(error)
    for p in sorted({str(path), str(path.resolve()), str(path.parent), str(path.parent.resolve())}, key=len,
                    reverse=True):
        message = message.replace(f"'{p}'", "the upload").replace(p, "the upload")
    return message


def probe_video(path: Path, limits: Limits, *, fps: float | None) -> tuple[int, int, int, float]:
    """Opens a stored video file or frame folder with ``ivos.open_video``, checks the limits
    from the container (frames, size, duration) before decoding, then decodes every frame once
    (``FrameSource.verify``). Returns (frames, height, width, fps)."""
    import ivos

    try:
        source = ivos.open_video(path, cache_size=1, fps=fps)
    except ivos.BackendUnavailable as e:
        raise ApiError(501, "video_backend_missing",
                       f"reading video files needs PyAV on the server: {client_message(e, path)}") from None
    except ivos.InvalidInput as e:
        raise ApiError(400, "not_a_video",
                       f"the upload cannot be read as a video: {client_message(e, path)}") from None
    try:
        n, h, w, rate = len(source), source.height, source.width, float(source.fps)
        if n > limits.max_frames:
            raise limit_exceeded("max_frames", f"the video has {n} frames, more than {limits.max_frames}",
                                 flag="max-frames", value=n)
        check_pixels("a video frame", w, h, limits)
        duration = n / rate if rate > 0 else 0.0
        if duration > limits.max_duration_s:
            raise limit_exceeded("max_duration_s", f"the video lasts {duration:.1f} s ({n} frames at {rate:g} fps), "
                                 f"more than {limits.max_duration_s:g} s", flag="max-duration-s", value=duration)
        try:
            source.verify()
        except ivos.InvalidInput as e:
            raise ApiError(400, "corrupt_video",
                           f"the video cannot be decoded to the end: {client_message(e, path)}") from None
    finally:
        source.close()
    return n, h, w, rate
