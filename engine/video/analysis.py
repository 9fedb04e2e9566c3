"""Reading a propagated video without ground truth: which frame is most likely wrong
(``suggest``) and how hard the video is (``difficulty``). Pure functions of a ``VideoState``'s
masks, confidences and thumbnails; ``VideoPredictor`` checks the state and picks the objects.
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidInput
from ..mask_metrics import iou
from .results import FrameSuggestion, VideoDifficulty
from .state import VideoState, check_state
from .tracks import ObjectTrack


def suggest(state: VideoState, tracks: list[ObjectTrack]) -> FrameSuggestion:
    """The frame most likely wrong among ``tracks`` (each propagated on every frame): per
    frame the worst object's ``frame_scores``, among the frames some object is not annotated
    on; ``FrameSuggestion.obj_id`` names that object. InvalidInput when every frame is
    annotated."""
    per_object = np.stack([frame_scores(state, t) for t in tracks])
    with np.errstate(invalid="ignore"):
        scores = np.fmax.reduce(per_object, axis=0) if len(tracks) > 1 else per_object[0]
    if np.all(np.isnan(scores)):
        raise InvalidInput("every frame is annotated: there is no frame to suggest")
    best = int(np.nanargmax(scores))
    worst = int(np.nanargmax(np.where(np.isnan(per_object[:, best]), -np.inf, per_object[:, best])))
    return FrameSuggestion(best, float(scores[best]), scores.astype(np.float32), tracks[worst].obj_id)


def frame_scores(state: VideoState, track: ObjectTrack) -> np.ndarray:
    """float64 (N,): how likely each frame's mask of one object is wrong (NaN where the object
    is annotated), the sum of three cues, each in [0, 1]:

    * low confidence: 1 - the mask's confidence (uncertain pixels near the object);
    * temporal inconsistency: 1 - the lower IoU of the mask with its two neighbours (a good
      mask changes smoothly; a jump in or out of the object is an error on one side of it);
    * area outlier: |log((area + 1) / (median area + 1))|, clipped to 1 (the object's size
      rarely changes fast; lost or leaking masks change it a lot).
    """
    n = state.num_frames
    masks = [track.mask(i) for i in range(n)]
    areas = np.array([np.count_nonzero(m) for m in masks], np.float64)
    iou_next = np.array([iou(masks[i], masks[i + 1]) for i in range(n - 1)] + [1.0])
    iou_prev = np.concatenate([[1.0], iou_next[:-1]])
    inconsistency = 1.0 - np.minimum(iou_prev, iou_next)
    unconfident = 1.0 - np.array([track.confidence.get(i, 1.0) for i in range(n)])
    outlier = np.minimum(1.0, np.abs(np.log((areas + 1) / (np.median(areas) + 1))))
    scores = (unconfident + inconsistency + outlier).astype(np.float32).astype(np.float64)
    scores[list(track.annotations)] = np.nan
    return scores


def difficulty(state: VideoState, tracks: list[ObjectTrack]) -> VideoDifficulty:
    """Motion-based difficulty (see ``VideoDifficulty``) of the hardest of ``tracks`` (each
    propagated on every frame)."""
    n = state.num_frames
    if n < 2:
        return VideoDifficulty(0.0, 0.0, 0.0)
    diffs = [float(np.abs(state.thumbs[i].astype(np.float32) - state.thumbs[i - 1]).mean()) / 255.0
             for i in range(1, n) if i in state.thumbs and i - 1 in state.thumbs]
    image_motion = float(np.mean(diffs)) if diffs else 0.0
    mask_motion = 0.0
    for track in tracks:
        masks = [track.mask(i) for i in range(n)]
        ious = [iou(masks[i - 1], masks[i]) for i in range(1, n)]
        mask_motion = max(mask_motion, 1.0 - float(np.mean(ious)))
    return VideoDifficulty(mask_motion, mask_motion, image_motion)


def propagated_tracks(state: VideoState, what: str, obj_id: int | None) -> list[ObjectTrack]:
    """The tracks ``what`` reads (``obj_id``'s, or every annotated one for None), each checked
    to have a mask on every frame; InvalidInput naming what is missing otherwise."""
    state = check_state(state)
    tracks = state.annotated_tracks() if obj_id is None else [state.track(obj_id)]
    if not tracks:
        raise InvalidInput(f"{what} needs a propagated video: annotate a frame and run propagate_in_video")
    for track in tracks:
        missing = state.num_frames - len(track.masks)
        if not track.annotations or missing:
            raise InvalidInput(f"{what} needs a propagated video: annotate a frame and run propagate_in_video "
                               f"({missing} of {state.num_frames} frames have no mask of object {track.obj_id} yet)")
    return tracks
