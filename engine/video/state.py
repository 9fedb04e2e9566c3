"""``VideoState``: everything one video session knows, and its file format.

The state is explicit (SAM 2's design): ``VideoPredictor`` holds models and settings only,
never session data, so one predictor serves any number of states, even with their
propagation generators advanced alternately, and a state can be saved, restored into
another process or predictor, and continued with identical results.

Layout::

    VideoState
      video: FrameSource             the frames (lazily decoded, bounded cache); how to reopen
                                     it is recorded at save time (file path / folder / arrays)
      thumbs: {frame_idx: (32, 32) uint8}      grey thumbnails (motion estimate); per frame
      objects: {obj_id: ObjectTrack}            per-object data (SAM 2's obj_id: ints >= 0); an
                                                object appears with its first click or mask
        ObjectTrack
          annotations: {frame_idx: (H, W) uint8 {0,1}, read-only}   the user's masks, exact
          clicks: {frame_idx: [(x, y, label)]}  all clicks on that frame (original pixels)
          edits: {frame_idx: [FrameEdit]}       undo stack: what the frame held before each edit
          masks: {frame_idx: RLE}               current mask (annotated or propagated)
          confidence: {frame_idx: float}        confidence of that mask (1 for annotations)
          head: {name: float32 array, read-only} | None    fine-tuned OSVOS head (None: parent)
          head_frames, head_digest, head_model  what the head was tuned on, and for which bundle
          finetune_report: FinetuneResult | None

Several objects per video (SAM 2's ``obj_id``): one ``ObjectTrack`` each, with its own
clicks, undo stacks, masks and fine-tuned OSVOS head. A fresh state has no object; the
predictor adds one at its first ``add_new_points`` / ``add_new_mask`` and drops it at
``remove_object``. Stored masks: an annotation is kept exactly as the user made it (two
objects' annotations on one frame may overlap; combined outputs resolve it, see
``VideoPredictor``); a propagated mask is already resolved against the other objects of the
same propagation (no pixel in two objects). The single-object field names
(``state.annotations``, ``state.masks``, ``state.head`` ...) are properties for object 1
(``DEFAULT_OBJ_ID``): reading them gives object 1's live field, or an empty one when there is
no object 1 yet; assigning creates object 1.

Saving: ``state.save(path)`` and ``VideoState.load(path, video=None)`` live on the state,
since reading or writing one needs no model (a session store can keep states without a
predictor); ``VideoPredictor.save_state(state, path)`` / ``load_state(path)`` are the same
calls in SAM 2's predictor-centred spelling. A loaded state continues exactly as the saved
one would have: its head is used as is while the annotations it was tuned on
(``head_digest``) and the OSVOS bundle (``head_model``, "name@version") are unchanged.

The file format and its reader/writer live in ``ivos.video.state_file``; the per-object
records (``ObjectTrack``, ``FrameEdit``) in ``ivos.video.tracks``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import describe
from ..errors import InvalidInput
from .frames import FrameSource
from .state_file import read_state, write_state
from .tracks import DEFAULT_OBJ_ID, ObjectTrack, check_obj_id


def _single(name: str):
    """A property reading/writing object 1's ``name`` (the single-object conveniences):
    reading without an object 1 gives a fresh empty value (not stored); assigning creates it."""

    def get(self):
        track = self.objects.get(DEFAULT_OBJ_ID)
        return getattr(ObjectTrack() if track is None else track, name)

    def set(self, value):
        track = self.objects.setdefault(DEFAULT_OBJ_ID, ObjectTrack(obj_id=DEFAULT_OBJ_ID))
        setattr(track, name, value)

    return property(get, set, doc=f"Object {DEFAULT_OBJ_ID}'s ``{name}`` (see ``ObjectTrack``).")


@dataclass(eq=False, repr=False)
class VideoState:
    """Everything known about one video. Create with ``VideoPredictor.init_state`` or
    ``VideoState.load``; save with ``save``.

    Attributes:
        video: the lazily decoded frames (``ivos.video.frames.FrameSource``).
        objects: obj_id -> ``ObjectTrack`` (empty until a first click or mask).
        thumbs: frame_idx -> (32, 32) uint8 grey thumbnail (1 KB a frame, for the motion
            estimate of ``VideoPredictor.difficulty``).

    ``annotations``, ``clicks``, ``edits``, ``masks``, ``confidence``, ``head``,
    ``head_frames`` and ``finetune_report`` are object 1's (``ObjectTrack``, live: reading
    ``state.masks`` gives the track's dict; an empty value when there is no object 1), for
    single-object code.
    """

    video: FrameSource
    objects: dict[int, ObjectTrack] = field(default_factory=dict)
    thumbs: dict[int, np.ndarray] = field(default_factory=dict)

    annotations = _single("annotations")
    clicks = _single("clicks")
    edits = _single("edits")
    masks = _single("masks")
    confidence = _single("confidence")
    head = _single("head")
    head_frames = _single("head_frames")
    finetune_report = _single("finetune_report")

    def __repr__(self) -> str:
        return f"VideoState(video={self.video.name!r}, frames={self.num_frames}, objects={list(self.objects.values())})"

    @property
    def num_frames(self) -> int:
        return len(self.video)

    @property
    def obj_ids(self) -> list[int]:
        """The state's object ids, ascending."""
        return sorted(self.objects)

    def track(self, obj_id: int = DEFAULT_OBJ_ID) -> ObjectTrack:
        """The ``ObjectTrack`` of ``obj_id``; InvalidInput naming obj_id when it is not a
        non-negative integer or not one of the state's objects."""
        key = check_obj_id(obj_id)
        if key not in self.objects:
            raise InvalidInput(f"obj_id {key} is not an object of this state (objects: {sorted(self.objects)}): "
                               "add_new_points or add_new_mask creates an object")
        return self.objects[key]

    def track_for_edit(self, obj_id: int) -> ObjectTrack:
        """``track(obj_id)``, or for an unknown object a new track that is not registered yet
        (the editor registers it once its edit succeeded, so a failed call leaves no empty
        object)."""
        key = check_obj_id(obj_id)
        return self.objects[key] if key in self.objects else ObjectTrack(obj_id=key)

    def annotated_tracks(self) -> list[ObjectTrack]:
        """The objects with an annotated frame, ascending obj_id."""
        return [self.objects[k] for k in sorted(self.objects) if self.objects[k].annotations]

    def mask(self, frame_idx: int, obj_id: int = DEFAULT_OBJ_ID) -> np.ndarray | None:
        """Object ``obj_id``'s stored mask of a frame (uint8 (H, W) {0,1}), or None when the
        object or its mask is missing."""
        track = self.objects.get(check_obj_id(obj_id))
        return None if track is None else track.mask(frame_idx)

    def reset(self) -> None:
        """Forgets every object (annotations, clicks, undo stacks, masks, heads) and the
        thumbnails (keeps the video)."""
        self.objects = {}
        self.thumbs = {}
    # ---- saving ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, embed_frames: bool = True) -> Path:
        """Writes the state to ``path`` (one ZIP file, ``ivos.video.state_file``), atomically: a
        temporary file in the same folder, renamed over ``path`` once complete. Videos from
        a file or folder are referenced by absolute path; in-memory frames are embedded
        ((N, H, W, 3) uint8, stored uncompressed) unless ``embed_frames=False`` (then
        ``load`` needs ``video=``). Returns the path written."""
        return write_state(self, path, embed_frames=bool(embed_frames))

    @classmethod
    def load(cls, path: str | os.PathLike, *, video: Any = None, cache_size: int | None = None) -> "VideoState":
        """Reads a state written by ``save``.

        Args:
            path: the state file.
            video: the frames to use instead of the recorded ones (a file path, folder,
                (N, H, W, 3) uint8 frames or a FrameSource, as ``init_state`` takes); needed
                when the video moved or was not embedded. It must have the recorded frame
                count and size.
            cache_size: decoded frames to keep in memory (default: the saved state's).

        Raises:
            InvalidInput: naming ``path`` when it is missing, not a state file, corrupt,
                truncated or from a newer format; naming ``video`` when the frames cannot be
                opened or do not match.
        """
        saved = read_state(path, video=video, cache_size=cache_size)
        return cls(saved.video, objects=saved.objects, thumbs=saved.thumbs)


def check_state(state: Any) -> VideoState:
    """``state`` when it is a ``VideoState``; InvalidInput naming it otherwise."""
    if not isinstance(state, VideoState):
        raise InvalidInput(f"state must be a VideoState from init_state, got {describe(state)}")
    return state
