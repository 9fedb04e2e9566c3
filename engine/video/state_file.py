"""The file format of ``VideoState.save`` / ``VideoState.load``: ``write_state`` and
``read_state``.

File format (``STATE_FORMAT_VERSION`` = 1): one ZIP file, written to a temporary file beside
the target and renamed over it (atomic: a crash leaves the old file or the new one, never
half of one). Members:

* ``manifest.json``: ``{"format": "ivos-video-state", "format_version": 1, "written_by",
  "video": {"kind": "file"|"folder"|"frames"|"external", "path", "fps", "cache_size",
  "num_frames", "height", "width", "name", "names_sha256"}, "objects": [{"obj_id",
  "clicks": {frame: [[x, y, label]...]}, "edits": {frame: [{"clicks": [[x, y, label]...] |
  null, "annotated", "mask": index | null, "confidence"}...]}, "head": [param names] | null,
  "head_frames", "head_digest", "head_model", "finetune_report": {"seconds",
  "feature_seconds", "train_seconds", "examples", "final_loss"} | null}]}``.
* ``.npy`` arrays (numpy's format, no pickles; deflated): ``thumbs.frames`` int32 (T,),
  ``thumbs.images`` uint8 (T, 32, 32); per object, under ``obj<id>/``: ``masks.frames``
  int32 (M,), ``masks.offsets`` int64 (M+1,), ``masks.counts`` int32 (the COCO RLE run
  lengths of all masks, column-major as ``ivos.formats.mask_files.rle_encode``, concatenated: mask
  k's runs are ``counts[offsets[k]:offsets[k+1]]``), the same three for ``annotations``, the
  same without frames for ``edits`` (the masks of the undo stacks, referenced by the
  manifest's ``"mask"`` index), ``confidence.frames`` int32 + ``confidence.values`` float64,
  and ``head/<param name>`` float32; ``frames.npy`` uint8 (N, H, W, 3), stored uncompressed,
  for in-memory videos.

Frames: a video file or folder is stored by its absolute path, reopened at load and checked
to have the same frame count and size (a folder also the same frame names). In-memory frames
((N, H, W, 3) arrays) are embedded, since nothing else could give them back: the file then
holds the whole video, written frame by frame (``save(path, embed_frames=False)`` leaves
them out). A custom ``FrameSource`` is never embedded. Without frames in the file or at the
recorded path, ``load(path, video=...)`` takes them (any ``init_state`` input of the recorded
count and size).

Errors: a file that is missing, not a ZIP, truncated, fails a CRC, lacks a member or holds
inconsistent arrays raises ``InvalidInput`` naming the file; a newer format version says to
upgrade ivos.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._validate import describe
from .._version import __version__
from ..errors import InvalidInput
from ..formats.rle import rle_decode
from .frames import ArraySource, FileSource, FolderSource, FrameSource, open_video
from .osvos.finetune import FinetuneResult
from .tracks import THUMB_SIZE, Click, FrameEdit, ObjectTrack, compact_rle, frozen_mask

STATE_FORMAT = "ivos-video-state"
STATE_FORMAT_VERSION = 1
"""Version of the file ``VideoState.save`` writes; ``load`` reads this version and older."""


class SavedState(NamedTuple):
    """What a state file holds: ``VideoState(video, objects=objects, thumbs=thumbs)``."""

    video: FrameSource
    objects: dict[int, ObjectTrack]
    thumbs: dict[int, np.ndarray]


def write_state(state: Any, path: str | os.PathLike, *, embed_frames: bool) -> Path:
    """``VideoState.save``: writes ``state`` (a ``VideoState``) to ``path`` atomically; returns the path."""
    target = _check_path(path)
    if target.is_dir():
        raise InvalidInput(f"path {target} is a folder: expected a file name for the state")
    if not target.parent.is_dir():
        raise InvalidInput(f"path {target}: folder {target.parent} does not exist")
    manifest, arrays = _serialise(state, embed_frames=embed_frames)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                                 allowZip64=True) as zf:
                zf.writestr("manifest.json", json.dumps(manifest, indent=1))
                for name, array in arrays.items():
                    _write_array(zf, name, array)
                if manifest["video"]["kind"] == "frames":
                    _write_frames(zf, state.video)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target



def _serialise(state: Any, *, embed_frames: bool) -> tuple[dict, dict[str, np.ndarray]]:
    v = state.video
    video: dict[str, Any] = {"num_frames": len(v), "height": v.height, "width": v.width, "fps": v.fps,
                             "cache_size": v.cache_size, "name": v.name, "path": None, "names_sha256": None}
    if isinstance(v, FileSource):
        video.update(kind="file", path=str(Path(v.path).resolve()))
    elif isinstance(v, FolderSource):
        video.update(kind="folder", path=str(Path(v.folder).resolve()), names_sha256=_names_digest(v))
    elif isinstance(v, ArraySource) and embed_frames:
        video["kind"] = "frames"
    else:
        video["kind"] = "external"
    arrays: dict[str, np.ndarray] = {}
    thumb_idx = sorted(state.thumbs)
    arrays["thumbs.frames"] = np.array(thumb_idx, np.int32)
    arrays["thumbs.images"] = (np.stack([state.thumbs[i] for i in thumb_idx]).astype(np.uint8) if thumb_idx
                               else np.zeros((0, THUMB_SIZE, THUMB_SIZE), np.uint8))
    objects = []
    for obj_id in sorted(state.objects):
        t = state.objects[obj_id]
        pre = f"obj{obj_id}/"
        frames, offsets, counts = _pack([(i, t.masks[i]) for i in sorted(t.masks)])
        arrays.update({pre + "masks.frames": frames, pre + "masks.offsets": offsets, pre + "masks.counts": counts})
        frames, offsets, counts = _pack([(i, compact_rle(t.annotations[i])) for i in sorted(t.annotations)])
        arrays.update({pre + "annotations.frames": frames, pre + "annotations.offsets": offsets,
                       pre + "annotations.counts": counts})
        conf = sorted(t.confidence)
        arrays[pre + "confidence.frames"] = np.array(conf, np.int32)
        arrays[pre + "confidence.values"] = np.array([t.confidence[i] for i in conf], np.float64)
        edit_masks: list[tuple[int, dict]] = []
        edits = {}
        for idx in sorted(t.edits):
            out = []
            for e in t.edits[idx]:
                ref = None
                if e.mask is not None:
                    ref = len(edit_masks)
                    edit_masks.append((idx, e.mask))
                out.append({"clicks": None if e.clicks is None else [list(c) for c in e.clicks],
                            "annotated": e.annotated, "mask": ref, "confidence": e.confidence})
            edits[str(idx)] = out
        _, offsets, counts = _pack(edit_masks)
        arrays.update({pre + "edits.offsets": offsets, pre + "edits.counts": counts})
        if t.head is not None:
            for name, value in t.head.items():
                arrays[pre + "head/" + name] = np.asarray(value, np.float32)
        r = t.finetune_report
        objects.append({
            "obj_id": obj_id,
            "clicks": {str(i): [[float(x), float(y), int(lab)] for x, y, lab in t.clicks[i]]
                       for i in sorted(t.clicks)},
            "edits": edits,
            "head": None if t.head is None else list(t.head),
            "head_frames": [int(i) for i in t.head_frames],
            "head_digest": t.head_digest,
            "head_model": t.head_model,
            "finetune_report": None if r is None else {
                "seconds": r.seconds, "feature_seconds": r.feature_seconds, "train_seconds": r.train_seconds,
                "examples": r.examples, "final_loss": r.final_loss},
        })
    manifest = {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION, "written_by": f"ivos {__version__}",
                "video": video, "objects": objects}
    return manifest, arrays


def read_state(path: str | os.PathLike, *, video: Any = None, cache_size: int | None = None) -> SavedState:
    """``VideoState.load``: the state saved in ``path`` (see there for the arguments)."""
    file = _check_path(path)
    if not file.is_file():
        raise InvalidInput(f"path {file} does not exist or is not a file: expected a state written by "
                           "VideoState.save")
    try:
        with zipfile.ZipFile(file) as zf:
            return _read_state(zf, file, video, cache_size)
    except InvalidInput:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, TypeError, IndexError,
            AttributeError, EOFError, OSError, zlib.error) as e:
        raise InvalidInput(f"state file {file} is corrupt, truncated or not an ivos video state "
                           f"({type(e).__name__}: {e})") from None


# ---- file helpers ------------------------------------------------------------------------


def _check_path(path: Any) -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InvalidInput(f"path must be a file path (str or os.PathLike), got {describe(path)}")
    return Path(path)


def _names_digest(source: FrameSource) -> str:
    return hashlib.sha256("\n".join(source.frame_names).encode()).hexdigest()


def _pack(items: list[tuple[int, dict]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[(frame, RLE)] -> frames int32 (M,), offsets int64 (M+1,), concatenated counts int32."""
    counts = [np.asarray(rle["counts"], np.int32) for _, rle in items]
    offsets = np.zeros(len(items) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in counts])
    return (np.array([i for i, _ in items], np.int32), offsets,
            np.concatenate(counts) if counts else np.zeros(0, np.int32))


def _write_array(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with zf.open(name + ".npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


def _write_frames(zf: zipfile.ZipFile, video: ArraySource) -> None:
    """The in-memory frames as one (N, H, W, 3) uint8 .npy, written frame by frame (no copy of
    the whole video) and stored uncompressed."""
    info = zipfile.ZipInfo("frames.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    with zf.open(info, "w", force_zip64=True) as f:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": (len(video), video.height, video.width, 3)}
        np.lib.format.write_array_header_2_0(f, header)
        for i in range(len(video)):
            f.write(np.ascontiguousarray(video._frames[i], np.uint8).tobytes())


class _Reader:
    """Typed access to a state file's members; every problem is a ``ValueError`` that
    ``VideoState.load`` turns into InvalidInput naming the file."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf = zf
        self.names = set(zf.namelist())

    def array(self, name: str, dtype, ndim: int | None) -> np.ndarray:
        """Member ``name``.npy, checked to have ``dtype`` and ``ndim`` dimensions (None: any)."""
        member = name + ".npy"
        if member not in self.names:
            raise ValueError(f"member {member} is missing")
        with self.zf.open(member) as f:
            a = np.lib.format.read_array(f, allow_pickle=False)
        if a.dtype != np.dtype(dtype) or (ndim is not None and a.ndim != ndim):
            raise ValueError(f"member {member} holds {describe(a)}, expected {ndim or 'N'}-D {np.dtype(dtype)}")
        return a

    def rles(self, pre: str, h: int, w: int, n: int, *,
             with_frames: bool = True) -> tuple[np.ndarray | None, list[dict]]:
        """The RLEs stored as ``pre``.frames/.offsets/.counts (see the module docstring):
        (frames int32 (M,) or None, M compact RLE dicts of (h, w) masks)."""
        frames = self.array(pre + ".frames", np.int32, 1) if with_frames else None
        offsets = self.array(pre + ".offsets", np.int64, 1)
        counts = self.array(pre + ".counts", np.int32, 1)
        m = len(offsets) - 1
        if m < 0 or (frames is not None and len(frames) != m) or offsets[0] != 0 or offsets[-1] != len(counts) \
                or np.any(np.diff(offsets) < 0):
            raise ValueError(f"{pre}: offsets do not index its run lengths")
        if frames is not None:
            _check_frames(pre, frames, n)
        if len(counts) and counts.min() < 0:
            raise ValueError(f"{pre}: negative run length")
        sums = np.add.reduceat(counts.astype(np.int64), offsets[:-1]) if len(counts) else np.zeros(m, np.int64)
        sums[np.diff(offsets) == 0] = 0  # reduceat gives the element, not 0, for empty slices
        if np.any(sums != h * w):
            raise ValueError(f"{pre}: a mask's run lengths do not sum to {h}x{w} pixels")
        out = [{"size": [h, w], "counts": counts[offsets[k]:offsets[k + 1]].copy()} for k in range(m)]
        return frames, out


def _check_frames(what: str, frames: np.ndarray, n: int) -> None:
    if len(frames) and (frames.min() < 0 or frames.max() >= n or len(np.unique(frames)) != len(frames)):
        raise ValueError(f"{what}: frame indices must be unique and in 0..{n - 1}")


def _open_frames(rd: _Reader, file: Path, info: dict, video: Any, cache_size: int) -> FrameSource:
    n, h, w, fps = int(info["num_frames"]), int(info["height"]), int(info["width"]), float(info["fps"])
    kind = info["kind"]
    if video is not None:
        own_rate = isinstance(video, (str, os.PathLike)) and Path(video).is_file()  # a file keeps its own fps
        source = open_video(video, cache_size=cache_size, fps=None if own_rate else fps)
        if (len(source), source.height, source.width) != (n, h, w):
            raise InvalidInput(f"video {source.name} has {len(source)} frames of {source.width}x{source.height}, but "
                               f"state file {file} was saved with {n} frames of {w}x{h}")
        return source
    if kind == "frames":
        frames = rd.array("frames", np.uint8, 4)
        if frames.shape != (n, h, w, 3):
            raise ValueError(f"member frames.npy has shape {frames.shape}, expected {(n, h, w, 3)}")
        return ArraySource(frames, cache_size=cache_size, fps=fps)
    if kind not in ("file", "folder", "external"):
        raise ValueError(f"unknown video kind {kind!r}")
    if kind == "external":
        raise InvalidInput(f"state file {file} holds no frames and no video path (its video was {info['name']!r}): "
                           "pass VideoState.load(path, video=...) with the same frames")
    where = Path(info["path"])
    try:
        source = open_video(where, cache_size=cache_size, fps=fps)
    except InvalidInput as e:
        raise InvalidInput(f"state file {file} refers to video {where}, which cannot be opened ({e}); pass "
                           "VideoState.load(path, video=...) with the same frames") from None
    same = (len(source), source.height, source.width) == (n, h, w)
    if same and kind == "folder":
        same = _names_digest(source) == info["names_sha256"]
    if not same:
        raise InvalidInput(f"state file {file} refers to video {where}, which changed since it was saved "
                           f"(now {len(source)} frames of {source.width}x{source.height}, saved {n} of {w}x{h}"
                           f"{' or other frame names' if kind == 'folder' else ''}); pass video=... to use it anyway "
                           "if the frames are the same")
    return source


def _read_state(zf: zipfile.ZipFile, file: Path, video: Any, cache_size: int | None) -> SavedState:
    if "manifest.json" not in zf.namelist():
        raise ValueError("member manifest.json is missing")
    manifest = json.loads(zf.read("manifest.json"))
    if not isinstance(manifest, dict) or manifest.get("format") != STATE_FORMAT:
        raise ValueError(f"manifest format is {manifest.get('format') if isinstance(manifest, dict) else manifest!r}, "
                         f"expected {STATE_FORMAT!r}")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"format_version {version!r} is not a positive integer")
    if version > STATE_FORMAT_VERSION:
        raise InvalidInput(f"state file {file} has format version {version}, written by "
                           f"{manifest.get('written_by', 'a newer ivos')}; this ivos reads versions up to "
                           f"{STATE_FORMAT_VERSION}: upgrade ivos to load it")
    rd = _Reader(zf)
    info = manifest["video"]
    n, h, w = int(info["num_frames"]), int(info["height"]), int(info["width"])
    if n < 1 or h < 1 or w < 1:
        raise ValueError(f"video size {n} frames of {w}x{h} is not positive")
    if cache_size is None:
        cache_size = int(info["cache_size"])
    source = _open_frames(rd, file, info, video, cache_size)
    state = SavedState(source, {}, {})
    thumb_frames = rd.array("thumbs.frames", np.int32, 1)
    thumbs = rd.array("thumbs.images", np.uint8, 3)
    _check_frames("thumbs", thumb_frames, n)
    if thumbs.shape != (len(thumb_frames), THUMB_SIZE, THUMB_SIZE):
        raise ValueError(f"thumbs.images has shape {thumbs.shape}, expected ({len(thumb_frames)}, 32, 32)")
    state.thumbs.update({int(i): thumbs[k].copy() for k, i in enumerate(thumb_frames)})
    for obj in manifest["objects"]:
        obj_id = obj["obj_id"]
        if isinstance(obj_id, bool) or not isinstance(obj_id, int) or obj_id < 0 or obj_id in state.objects:
            raise ValueError(f"obj_id {obj_id!r} is not a unique non-negative integer")
        state.objects[obj_id] = _read_track(rd, obj, f"obj{obj_id}/", n, h, w)
    return state


def _frame_key(key: str, n: int) -> int:
    idx = int(key)
    if not 0 <= idx < n:
        raise ValueError(f"frame {idx} out of range 0..{n - 1}")
    return idx


def _clicks(value: Any) -> list[Click]:
    out = []
    for x, y, lab in value:
        if isinstance(x, bool) or isinstance(y, bool) or not isinstance(lab, int) or lab not in (0, 1):
            raise ValueError(f"click {[x, y, lab]!r} is not [x, y, 0|1]")
        out.append((float(x), float(y), int(lab)))
    return out


def _read_track(rd: _Reader, obj: dict, pre: str, n: int, h: int, w: int) -> ObjectTrack:
    t = ObjectTrack(obj_id=obj["obj_id"])
    frames, rles = rd.rles(pre + "masks", h, w, n)
    t.masks = {int(i): r for i, r in zip(frames, rles)}
    frames, rles = rd.rles(pre + "annotations", h, w, n)
    t.annotations = {int(i): frozen_mask(rle_decode(r)) for i, r in zip(frames, rles)}
    conf_frames = rd.array(pre + "confidence.frames", np.int32, 1)
    conf = rd.array(pre + "confidence.values", np.float64, 1)
    _check_frames(pre + "confidence", conf_frames, n)
    if len(conf) != len(conf_frames):
        raise ValueError(f"{pre}confidence: {len(conf_frames)} frames but {len(conf)} values")
    t.confidence = {int(i): float(c) for i, c in zip(conf_frames, conf)}
    t.clicks = {_frame_key(k, n): _clicks(v) for k, v in obj["clicks"].items()}
    _, edit_masks = rd.rles(pre + "edits", h, w, n, with_frames=False)
    for key, stack in obj["edits"].items():
        out = []
        for e in stack:
            ref = e["mask"]
            bad_ref = isinstance(ref, bool) or not isinstance(ref, int) or not 0 <= ref < len(edit_masks)
            if ref is not None and bad_ref:
                raise ValueError(f"{pre}edits: mask reference {ref!r} out of range")
            conf_e = e["confidence"]
            out.append(FrameEdit(None if e["clicks"] is None else tuple(_clicks(e["clicks"])),
                                 None if ref is None else edit_masks[ref], bool(e["annotated"]) and ref is not None,
                                 None if conf_e is None or ref is None else float(conf_e)))
        t.edits[_frame_key(key, n)] = out
    if obj["head"] is not None:
        head = {}
        for name in obj["head"]:
            value = rd.array(pre + "head/" + str(name), np.float32, None)
            value.setflags(write=False)
            head[str(name)] = value
        t.head = head
    t.head_frames = tuple(_frame_key(str(i), n) for i in obj["head_frames"])
    t.head_digest = obj["head_digest"]
    t.head_model = obj["head_model"]
    r = obj["finetune_report"]
    if r is not None and t.head is not None:
        t.finetune_report = FinetuneResult(t.head, float(r["seconds"]), float(r["feature_seconds"]),
                                           float(r["train_seconds"]), int(r["examples"]), float(r["final_loss"]))
    return t
