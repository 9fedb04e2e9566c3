"""The per-object records of a ``VideoState``: ``ObjectTrack`` (one object's annotations,
clicks, undo stacks, masks and head) and ``FrameEdit`` (one undo step). The layout is drawn in
``ivos.video.state``'s docstring."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validate import describe
from ..errors import InvalidInput
from ..formats.rle import rle_decode, rle_encode
from .osvos.finetune import FinetuneResult

DEFAULT_OBJ_ID = 1
"""The object of the single-object conveniences (``state.masks`` ..., ``ivos segment``'s default)."""
THUMB_SIZE = 32
"""Side of the grey thumbnails kept per frame."""


def compact_rle(mask: np.ndarray) -> dict:
    """``rle_encode`` of an (H, W) {0,1} mask with the run lengths as an int32 array (4 bytes
    a run instead of a Python int's ~36), the form the state keeps; ``rle_decode`` reads both."""
    rle = rle_encode(mask)
    return {"size": rle["size"], "counts": np.asarray(rle["counts"], np.int32)}


def frozen_mask(mask: np.ndarray) -> np.ndarray:
    """A read-only uint8 copy of an (H, W) mask."""
    out = np.array(mask, np.uint8)
    out.setflags(write=False)
    return out


Click = tuple[float, float, int]
"""(x, y, label): original pixels (x = column), label 1 positive / 0 negative."""


@dataclass(frozen=True)
class FrameEdit:
    """What one frame of one object held before an edit (a click batch or a mask), so that
    ``VideoPredictor.undo`` can restore it.

    Attributes:
        clicks: the frame's clicks before the edit (None: it had no click list).
        mask: compact RLE of the frame's mask before the edit (None: it had none).
        annotated: whether that mask was an annotation (else a propagated mask).
        confidence: its confidence (None when it had no mask).
    """

    clicks: tuple[Click, ...] | None
    mask: dict | None
    annotated: bool
    confidence: float | None


@dataclass(eq=False, repr=False)
class ObjectTrack:
    """Everything known about one object of a video. See the module docstring for the layout;
    frame indices are ints in [0, num_frames)."""

    obj_id: int = DEFAULT_OBJ_ID
    annotations: dict[int, np.ndarray] = field(default_factory=dict)
    clicks: dict[int, list[Click]] = field(default_factory=dict)
    edits: dict[int, list[FrameEdit]] = field(default_factory=dict)
    masks: dict[int, dict] = field(default_factory=dict)
    confidence: dict[int, float] = field(default_factory=dict)
    head: dict[str, np.ndarray] | None = None
    head_frames: tuple[int, ...] = ()
    head_digest: str | None = None
    head_model: str | None = None
    finetune_report: FinetuneResult | None = None

    def __repr__(self) -> str:
        return (f"ObjectTrack(obj_id={self.obj_id}, annotated={sorted(self.annotations)}, "
                f"masks={len(self.masks)}, fine_tuned={self.head is not None})")

    def mask(self, frame_idx: int) -> np.ndarray | None:
        """The current mask of a frame (uint8 (H, W) {0,1}), or None before it has one."""
        rle = self.masks.get(frame_idx)
        return None if rle is None else rle_decode(rle)

    def annotation_digest(self) -> str:
        """Hash of the annotated frames and their masks: the head is current when its
        ``head_digest`` equals this (a frame re-annotated or undone changes it)."""
        h = hashlib.blake2b(digest_size=16)
        for idx in sorted(self.annotations):
            m = np.ascontiguousarray(self.annotations[idx], np.uint8)
            h.update(np.array([idx, *m.shape], np.int64).tobytes())
            h.update(m.tobytes())
        return h.hexdigest()

    def snapshot(self, idx: int) -> FrameEdit:
        """What frame ``idx`` holds now (see ``FrameEdit``)."""
        clicks = self.clicks.get(idx)
        annotated = idx in self.annotations
        rle = compact_rle(self.annotations[idx]) if annotated else self.masks.get(idx)
        return FrameEdit(None if clicks is None else tuple(clicks), None if rle is None else dict(rle), annotated,
                         None if rle is None else self.confidence.get(idx, 1.0 if annotated else None))

    def annotate(self, idx: int, mask: np.ndarray, clicks: list[Click] | None) -> None:
        """Makes ``mask`` (H, W) {0,1} frame ``idx``'s annotation (kept exactly, read-only) with
        ``clicks`` as the frame's click list (None: no clicks); what the frame held before
        joins its undo stack."""
        edit = self.snapshot(idx)
        if clicks is None:
            self.clicks.pop(idx, None)
        else:
            self.clicks[idx] = clicks
        mask = frozen_mask(mask)
        self.annotations[idx] = mask
        self.masks[idx] = compact_rle(mask)
        self.confidence[idx] = 1.0
        self.edits.setdefault(idx, []).append(edit)

    def undo(self, idx: int) -> bool:
        """Takes back frame ``idx``'s last edit (``restore``); False when it has none."""
        stack = self.edits.get(idx)
        if not stack:
            return False
        self.restore(idx, stack.pop())
        if not stack:
            del self.edits[idx]
        return True

    def restore(self, idx: int, edit: FrameEdit) -> None:
        """Puts frame ``idx`` back to what ``edit`` recorded."""
        if edit.clicks is None:
            self.clicks.pop(idx, None)
        else:
            self.clicks[idx] = list(edit.clicks)
        self.annotations.pop(idx, None)
        if edit.mask is None:
            self.masks.pop(idx, None)
            self.confidence.pop(idx, None)
            return
        self.masks[idx] = edit.mask
        if edit.confidence is None:
            self.confidence.pop(idx, None)
        else:
            self.confidence[idx] = edit.confidence
        if edit.annotated:
            self.annotations[idx] = frozen_mask(rle_decode(edit.mask))


def check_obj_id(obj_id: Any, what: str = "obj_id") -> int:
    """``obj_id`` as an int: a non-negative integer (Python or numpy int, not a bool);
    InvalidInput naming ``what`` otherwise."""
    if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)) or obj_id < 0:
        raise InvalidInput(f"{what} must be a non-negative integer object id, got {describe(obj_id)}")
    return int(obj_id)
