"""What ``VideoPredictor`` returns: per-object frame results, per-frame results of every
object, the suggested frame and the difficulty estimate."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tracks import DEFAULT_OBJ_ID


@dataclass(frozen=True)
class FrameTimings:
    """Milliseconds spent on one frame."""

    decode_ms: float  # reading/decoding the frame (0 on a cache hit)
    infer_ms: float  # letterbox + normalise + network
    post_ms: float  # upsample, sigmoid, threshold, optional CRF, statistics
    total_ms: float


NO_TIME = FrameTimings(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class FrameResult:
    """One object's mask on one frame (``add_new_points``, ``add_new_mask``, ``refine``,
    ``undo``). ``mask`` uint8 (H, W) in {0, 1}; ``confidence`` in [0, 1]: 1 minus the share of
    uncertain pixels (0.2 < p < 0.8) among object + uncertain pixels (1 for annotated frames);
    ``source`` "annotated" or "propagated"; ``obj_id`` the object."""

    frame_idx: int
    mask: np.ndarray
    confidence: float
    timings: FrameTimings
    source: str
    obj_id: int = DEFAULT_OBJ_ID


@dataclass(frozen=True)
class MultiFrameResult:
    """Every propagated object's mask on one frame (``propagate_in_video``).

    Attributes:
        frame_idx: the frame.
        masks: obj_id -> uint8 (H, W) {0, 1} mask, ascending obj_id; never two objects on one
            pixel (the overlap rule, ``ivos.video.propagation``).
        confidence: obj_id -> confidence in [0, 1] of the object's own prediction (as
            ``FrameResult.confidence``; 1 where the object is annotated).
        sources: obj_id -> "annotated" or "propagated".
        object_ms: obj_id -> milliseconds of the object's network run + post-processing (0
            where annotated).
        timings: the whole frame: decode, network runs (all objects), post-processing
            (CRF per object + the overlap resolution), total.
    """

    frame_idx: int
    masks: dict[int, np.ndarray]
    confidence: dict[int, float]
    sources: dict[int, str]
    object_ms: dict[int, float]
    timings: FrameTimings

    @property
    def obj_ids(self) -> list[int]:
        return list(self.masks)


@dataclass(frozen=True)
class FrameSuggestion:
    """The frame most likely wrong, its score (higher = more likely wrong) and the per-frame
    scores it came from (float32 (N,), NaN for annotated frames); ``obj_id``: the object
    whose mask there is most likely wrong (with ``suggest_frame(state)`` over all objects:
    the worst one on that frame)."""

    frame_idx: int
    score: float
    scores: np.ndarray
    obj_id: int = DEFAULT_OBJ_ID


@dataclass(frozen=True)
class VideoDifficulty:
    """How hard the video is likely to be, from motion. ``score`` in [0, 1] (higher = harder):
    1 - mean IoU of consecutive masks (the paper's Figure 10 correlate); ``image_motion``:
    mean absolute difference of consecutive frames (0..1, 32x32 grey thumbnails)."""

    score: float
    mask_motion: float
    image_motion: float
