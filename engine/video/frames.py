"""Video input: frames decoded lazily, by index, through a bounded LRU cache.

``open_video(source)`` accepts a video file (mp4/webm/avi/mkv/mov, anything FFmpeg reads,
through PyAV: the ``video`` extra), a folder of JPEG/PNG frames (in natural order of their
file names, so ``2.jpg`` comes before ``10.jpg``; read with Pillow; no PyAV needed), or frames
already in memory ((N, H, W, 3) uint8 array or a list of them).

Every source names its frames (``frame_names``): a folder's file names without their suffix
(``00003.jpg`` -> ``"00003"``), else the zero-padded index (``"00000"``); outputs are written
under these names. A folder has no frame rate of its own: ``fps`` (default 25) says it.
``verify()`` decodes every frame once, so that a corrupt frame or one of another size fails
before any work is spent on the video.

Memory: a ``FrameSource`` holds at most ``cache_size`` decoded frames (least recently used
evicted), so a 10,000-frame video never sits in memory. Files are demuxed once at open (no
decoding) to count frames and record each frame's timestamp; reading frame i decodes forward
from the current position when i is ahead and close, else seeks to the key frame before i.
Frames are (H, W, 3) uint8 RGB, read-only arrays.

Not thread-safe: give each thread its own ``FrameSource``.
"""
from __future__ import annotations

import logging
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._validate import describe, positive_int
from ..errors import BackendUnavailable, InvalidInput

log = logging.getLogger("ivos")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_FPS = 25.0
"""Frame rate of sources that have none (folders, in-memory frames) unless given."""
SEEK_AHEAD = 30
"""Frames to decode forward before a seek becomes cheaper (about one GOP of typical files)."""


class FrameSource:
    """Frames by index with a bounded LRU cache. Subclasses implement ``_read(i)``."""

    def __init__(self, count: int, height: int, width: int, *, fps: float, cache_size: int, name: str):
        if count <= 0:
            raise InvalidInput(f"video {name} has no frames: expected at least one readable frame")
        self.name = name
        self.count, self.height, self.width, self.fps = count, height, width, fps
        self.cache_size = positive_int("cache_size", cache_size)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.decoded = 0  # frames decoded so far (tests and benchmarks read it)

    def __len__(self) -> int:
        return self.count

    def check_index(self, frame_idx: Any, name: str = "frame_idx") -> int:
        """``frame_idx`` as an int in [0, len); InvalidInput naming ``name`` otherwise."""
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
            raise InvalidInput(f"{name} must be an integer frame index, got {describe(frame_idx)}")
        if not 0 <= frame_idx < self.count:
            raise InvalidInput(f"{name} {int(frame_idx)} is out of range: the video has {self.count} frames "
                               f"(valid: 0..{self.count - 1})")
        return int(frame_idx)

    def __getitem__(self, frame_idx: int) -> np.ndarray:
        i = self.check_index(frame_idx)
        frame = self._cache.get(i)
        if frame is not None:
            self._cache.move_to_end(i)
            return frame
        frame = self._checked(i, self._read(i))
        frame.setflags(write=False)
        self._cache[i] = frame
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return frame

    def __iter__(self):
        return (self[i] for i in range(self.count))

    @property
    def frame_names(self) -> list[str]:
        """One name per frame, used for output files: zero-padded indices unless the source
        has names of its own (a folder's file stems)."""
        return [f"{i:05d}" for i in range(self.count)]

    def verify(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Decodes every frame once (without caching them), raising InvalidInput naming the
        first frame that cannot be read or has another size. ``progress(done, total)`` is
        called after each frame."""
        for i in range(self.count):
            if i not in self._cache:
                self._checked(i, self._read(i))
            if progress is not None:
                progress(i + 1, self.count)

    def _checked(self, i: int, frame: np.ndarray) -> np.ndarray:
        if frame.shape != (self.height, self.width, 3):
            raise InvalidInput(f"frame {i} ({self.frame_names[i]}) of {self.name} has shape {frame.shape}, expected "
                               f"({self.height}, {self.width}, 3) like frame 0: all frames must have one size")
        return frame

    @property
    def cached(self) -> int:
        """Frames held in memory now (<= cache_size)."""
        return len(self._cache)

    def _read(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        self._cache.clear()


class ArraySource(FrameSource):
    """Frames already in memory (the caller owns them; nothing is copied but the cache)."""

    def __init__(self, frames: Sequence[np.ndarray] | np.ndarray, *, cache_size: int, fps: float = DEFAULT_FPS):
        if len(frames) == 0:
            raise InvalidInput("video has no frames: expected at least one (H, W, 3) uint8 frame")
        first = frames[0]
        if not isinstance(first, np.ndarray) or first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
            raise InvalidInput(f"video frames must be (H, W, 3) uint8 RGB arrays, got {describe(first)}")
        self._frames = frames
        super().__init__(len(frames), first.shape[0], first.shape[1], fps=fps, cache_size=cache_size,
                         name="(in-memory frames)")

    def _read(self, i: int) -> np.ndarray:
        self.decoded += 1
        return np.ascontiguousarray(self._frames[i])


def natural_key(name: str) -> list:
    """Sort key that orders the digit runs of a name by value: "2" < "10", "f9" < "f10"."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)]


class FolderSource(FrameSource):
    """A folder of image files in natural name order; each frame read with Pillow on demand."""

    def __init__(self, folder: Path, *, cache_size: int, fps: float = DEFAULT_FPS):
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                       key=lambda p: natural_key(p.name))
        if not files:
            raise InvalidInput(f"video folder {folder} holds no frames: expected files ending in {IMAGE_SUFFIXES}")
        stems = [p.stem for p in files]
        if len(set(stems)) != len(stems):
            twins = sorted({s for s in stems if stems.count(s) > 1})
            raise InvalidInput(f"video folder {folder} has several frames named {twins[:3]} (e.g. 00001.jpg and "
                               f"00001.png): output files are named after frames, so each name must be unique")
        self._files = files
        self.folder = folder
        first = self._load(files[0])
        super().__init__(len(files), first.shape[0], first.shape[1], fps=fps, cache_size=cache_size,
                         name=str(folder))

    @staticmethod
    def _load(path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                return np.array(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as e:
            raise InvalidInput(f"frame file {path} cannot be read as an image: {e}") from None

    @property
    def frame_names(self) -> list[str]:
        return [p.stem for p in self._files]

    def _read(self, i: int) -> np.ndarray:
        self.decoded += 1
        return self._load(self._files[i])


def _import_av():
    try:
        import av
    except ImportError:
        raise BackendUnavailable("reading video files needs PyAV: pip install 'ivos[video]' "
                                 "(or pass a folder of frames)") from None
    return av


class FileSource(FrameSource):
    """A video file decoded with PyAV (FFmpeg). Frame i is the i-th frame in presentation
    order; timestamps come from one demux pass at open (no decoding)."""

    def __init__(self, path: Path, *, cache_size: int):
        av = _import_av()
        self._av = av
        self.path = path
        try:
            self._container = av.open(str(path))
            streams = self._container.streams.video
            if not streams:
                raise InvalidInput(f"video {path} has no video stream")
            self._stream = streams[0]
            pts = sorted(p.pts for p in self._container.demux(self._stream) if p.pts is not None and p.size > 0)
        except av.error.FFmpegError as e:
            raise InvalidInput(f"video {path} cannot be read: {e}") from None
        self._pts = pts
        ctx = self._stream.codec_context
        fps = float(self._stream.average_rate or self._stream.guessed_rate or DEFAULT_FPS)
        if not pts:
            raise InvalidInput(f"video {path} has no frames: expected at least one readable frame")
        super().__init__(len(pts), int(ctx.height), int(ctx.width), fps=fps, cache_size=cache_size, name=str(path))
        self._iter = None
        self._next = 0  # index of the frame self._iter yields next

    def _restart(self, i: int) -> None:
        """Positions the decoder so that it yields frame i next (seek to the key frame before)."""
        self._container.seek(self._pts[i], stream=self._stream, backward=True, any_frame=False)
        self._iter = self._container.decode(self._stream)
        self._next = -1  # unknown until a frame's pts tells

    def _read(self, i: int) -> np.ndarray:
        if self._iter is None or not (self._next <= i <= self._next + SEEK_AHEAD) or self._next < 0:
            self._restart(i)
        target = self._pts[i]
        try:
            for frame in self._iter:
                self.decoded += 1
                if frame.pts is None or frame.pts < target:
                    continue
                idx = int(np.searchsorted(self._pts, frame.pts))
                self._next = idx + 1
                if frame.pts == target:
                    return frame.to_ndarray(format="rgb24")
                break  # overshot: the stream's timestamps are not what the demux pass saw
        except self._av.error.FFmpegError as e:
            raise InvalidInput(f"video {self.path}: frame {i} cannot be decoded: {e}") from None
        self._iter = None
        raise InvalidInput(f"video {self.path}: frame {i} (pts {target}) cannot be decoded")

    def close(self) -> None:
        super().close()
        self._container.close()


def open_video(source: Any, *, cache_size: int = 32, fps: float | None = None) -> FrameSource:
    """A lazily decoded ``FrameSource`` over ``source``: a video file path, a folder of frames,
    an existing FrameSource (returned as is), or in-memory frames ((N, H, W, 3) uint8 array or
    list). ``cache_size``: decoded frames kept in memory (LRU). ``fps``: frames per second of a
    folder or in-memory frames (default ``DEFAULT_FPS``); a video file's own rate is used unless
    ``fps`` overrides it."""
    if fps is not None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not np.isfinite(fps) or fps <= 0:
            raise InvalidInput(f"fps must be a positive number of frames per second, got {describe(fps)}")
        fps = float(fps)
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return FolderSource(path, cache_size=cache_size, fps=fps or DEFAULT_FPS)
        if not path.is_file():
            raise InvalidInput(f"video {path} does not exist (expected a video file or a folder of frames)")
        if path.stat().st_size == 0:
            raise InvalidInput(f"video {path} is empty (0 bytes)")
        video = FileSource(path, cache_size=cache_size)
        if fps is not None:
            video.fps = fps
        return video
    if isinstance(source, (np.ndarray, list, tuple)):
        if isinstance(source, np.ndarray) and (source.ndim != 4 or source.shape[-1] != 3 or source.dtype != np.uint8):
            raise InvalidInput(f"video array must have shape (N, H, W, 3) and dtype uint8, got {describe(source)}")
        return ArraySource(source, cache_size=cache_size, fps=fps or DEFAULT_FPS)
    raise InvalidInput(f"video must be a file path, a folder of frames or (N, H, W, 3) uint8 frames, "
                       f"got {describe(source)}")
