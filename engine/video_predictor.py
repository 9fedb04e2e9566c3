"""``VideoPredictor``: clicks on a frame -> a mask on every frame (DESIGN.md section 3, paper 2.2-2.3).

Flow: ``init_state(video)`` opens the video lazily (bounded frame cache). ``add_new_points``
/ ``add_new_mask`` annotate frames (clicks go through the click-refinement network of
``ivos.ImagePredictor``). ``propagate_in_video`` fine-tunes the OSVOS head on the annotated
frames (when they changed since the last fine-tune) and then yields one ``MultiFrameResult``
per frame. ``refine`` corrects one frame with clicks, feeding the refinement network the
propagated mask (paper 2.3); the corrected frame joins the annotated frames, so the next
``propagate_in_video`` fine-tunes on it too and re-runs. ``suggest_frame`` names the frame
most likely wrong, without ground truth; ``difficulty`` estimates how hard the video is
from motion (the paper's future work, section 4.2). ``undo`` takes back a frame's last edit;
``save_state`` / ``load_state`` (``VideoState.save`` / ``load``) keep a session in one file.

Modes: "osvos" runs every frame independently (the paper's OSVOS); "osvos+mask" also feeds
the previous frame's mask as a prior (MaskTrack-style), propagating forward from the first
annotated frame and then backward from it. Annotated frames always yield the user's mask,
exactly as the user made it.

State: an explicit ``VideoState`` per video (``ivos.video_state``: layout, undo stacks, the
file format of ``save``/``load``); masks are kept as RLE (a 10,000-frame video of 480p masks
is a few tens of MB, not 4 GB). The predictor holds models and settings only: any number of
states can share one predictor, even with their ``propagate_in_video`` generators advanced
alternately (each frame binds its state's head: ``OsvosSession.bind_head``), and a saved state
continues in another predictor with identical results. Every edit of a frame (a click batch,
a mask) can be undone (``undo``). A failed call (``InvalidInput``) changes nothing in the
state. A predictor is not thread-safe (one per thread; they can share the ``Model``s); no
lock is held across a propagation.

Several objects (SAM 2's API): every edit names its object, ``add_new_points(state,
frame_idx, obj_id, points, labels)``; ``obj_id`` is a non-negative int, and an object exists
from its first click or mask until ``remove_object``. Each object has its own ``ObjectTrack``
(clicks, undo stacks, masks) and its own OSVOS head, fine-tuned on its own annotations.
``propagate_in_video`` runs every annotated object on each frame (the frame is decoded and
letterboxed once; one engine run per object, since the osvos-cpu backbone reads the object's
prior mask) and yields one ``MultiFrameResult`` per frame: ``{obj_id: mask}``.

No pixel belongs to two objects (the overlap rule). On a propagated frame each object's
foreground probability (after the CRF) is compared per pixel: the pixel goes to the object
with the highest probability when that is above 0.5, else to the background (argmax over the
objects, ties to the smaller obj_id). An annotation counts as probability 1 inside its mask
and beats any propagated probability; where two objects' annotations of one frame overlap,
the smaller obj_id wins. The annotations themselves are stored exactly as made (the
``FrameResult`` of ``add_new_points`` is the object's own mask); the rule applies to every
combined output: the results of ``propagate_in_video``, the masks stored for propagated
frames, ``object_masks`` / ``masks`` and ``ivos segment``'s files. With one object nothing
changes: the mask is ``probability > 0.5``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ._validate import click_labels, describe, image_points, positive_int
from .errors import InvalidInput
from .model import Model
from .osvos_engine import OsvosSession
from .osvos_finetune import FinetuneConfig, FinetuneResult, Progress, finetune
from .video import open_video
from .video_state import (DEFAULT_OBJ_ID, THUMB_SIZE, FrameEdit, ObjectTrack, VideoState, check_obj_id, compact_rle,
                          frozen_mask)

log = logging.getLogger("ivos")

MODES = ("osvos", "osvos+mask")
MAX_VIDEO_FRAMES = 100_000
"""Longest video ``init_state`` accepts by default (over an hour at 25 fps). Frames are decoded
lazily, but the state keeps per frame its mask as RLE (int32 run lengths: about 1-10 KB at
480p, more for ragged masks), a 1 KB thumbnail and a confidence, so its memory grows with the
length: about 0.2-1 GB at this limit. ``init_state(max_frames=None)`` lifts it."""
CRF_PARAMS = {"compat_bilateral": 3.0, "srgb": 5.0, "sxy_bilateral": 40.0}
"""Dense-CRF keywords for propagated frames (the rest: ``ivos.dense_crf``'s defaults). The
click CRF's setting chosen on held-aside DAVIS train frames (benchmarks/results/
click_crf_sweep.md); on the five held-aside train sequences it gives mean J 0.810 vs 0.774
with dense_crf's defaults (benchmarks/results/video_ablations.md)."""
MAX_EXAMPLES = 48
"""Cap on fine-tuning examples (annotated frames x augmentations): keeps re-fine-tuning
after many corrections inside the same time budget."""


@dataclass(frozen=True)
class FrameTimings:
    """Milliseconds spent on one frame."""

    decode_ms: float  # reading/decoding the frame (0 on a cache hit)
    infer_ms: float  # letterbox + normalise + network
    post_ms: float  # upsample, sigmoid, threshold, optional CRF, statistics
    total_ms: float


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
            pixel (the overlap rule, module docstring).
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


class VideoPredictor:
    """Interactive video object segmentation (one or several objects, SAM 2's API).

    Args:
        osvos_model: an OSVOS bundle from ``ivos.load`` (task "osvos").
        click_model: a click-refinement bundle (task "click-refinement") for add_new_points
            and refine; None = masks only (add_new_mask).
        mode: "osvos+mask" (default: previous-mask prior) or "osvos" (frames independent).
        crf: dense-CRF post-processing of each propagated frame (default on: mean J 0.810
            with ``CRF_PARAMS`` vs 0.724 without on five held-aside DAVIS train sequences;
            benchmarks/results/video_ablations.md).
        crf_params: keyword arguments for ``ivos.dense_crf`` on propagated frames (default:
            ``CRF_PARAMS``).
        click_crf: dense CRF after the click network in ``add_new_points`` and ``refine``;
            None (default) = the click bundle's ``postprocess.crf`` with its tuned
            ``crf_params``.
        finetune_config: fine-tuning knobs (``FinetuneConfig``).
        roi_margin: in "osvos+mask" mode, pixels farther than this many times the previous
            mask's box size (plus 10% of the frame size) outside that box are background: an object moves
            a bounded distance between frames, while background look-alikes far away are
            OSVOS's typical false positives. None = off.
        refine_radius: when set, ``refine`` keeps the network's new mask only within this
            fraction of the frame diagonal around the frame's refinement clicks and the current
            mask elsewhere. None (default) = the network's whole new mask: with the session-4
            click network it gives the largest gain after 1, 4 and 10 clicks on five held-aside
            DAVIS *train* sequences (benchmarks/results/video_ablations.md, "Refinement
            radius"; 0.2 was the default while the network was weaker).
        refine_connected: ``refine`` keeps only the connected regions of the network's change
            (new mask vs current mask) that contain one of the frame's refinement clicks
            (FocalClick's progressive merge). Off by default: on the same held-aside
            sequences it lowered the 1-click gain (+4.8 vs +8.5). Applied after
            ``refine_radius``.
        refine_focus: ``refine`` lets the network look only at the parts of the current mask
            that the new clicks concern (the connected region under each click, or the
            nearest one for a click on background) and keeps the current mask outside that
            view. A frame with several stray blobs is then corrected at the blob's own scale,
            not at the whole frame's. Off by default: on five held-aside DAVIS train
            sequences it lowered the 1-click gain (+5.9 vs +8.5; the network often needs the
            whole frame to tell what the object is).
    """

    def __init__(self, osvos_model: Model, click_model: Model | None = None, *, mode: str = "osvos+mask",
                 crf: bool = True, finetune_config: FinetuneConfig | None = None, roi_margin: float | None = 0.5,
                 refine_radius: float | None = None, crf_params: dict[str, Any] | None = None,
                 click_crf: bool | None = None, refine_connected: bool = False, refine_focus: bool = False):
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.crf = bool(crf)
        self.crf_params = dict(CRF_PARAMS if crf_params is None else crf_params)
        self.roi_margin = roi_margin
        self.refine_radius = refine_radius
        self.refine_connected = bool(refine_connected)
        self.refine_focus = bool(refine_focus)
        self.finetune_config = finetune_config or FinetuneConfig(use_prior=mode == "osvos+mask")
        self._osvos = OsvosSession(osvos_model)
        bundle = osvos_model.bundle
        self._head_model = f"{bundle.name}@{bundle.version}"  # recorded with a fine-tuned head
        self._clicker = None
        if click_model is not None:
            from .predictor import ImagePredictor

            self._clicker = ImagePredictor(click_model, crf=click_crf)

    # ---- state ---------------------------------------------------------------------------
    def init_state(self, video: Any, *, cache_size: int = 32, fps: float | None = None,
                   max_frames: int | None = MAX_VIDEO_FRAMES) -> VideoState:
        """Opens ``video`` (file path, folder of frames, (N, H, W, 3) uint8 frames or a
        FrameSource) lazily, keeping at most ``cache_size`` decoded frames; ``fps`` sets the
        frame rate of a folder or of in-memory frames (``ivos.video.open_video``). Videos
        longer than ``max_frames`` (``MAX_VIDEO_FRAMES``; None: no limit) are refused with
        InvalidInput, since the state grows with the length."""
        source = open_video(video, cache_size=cache_size, fps=fps)
        if max_frames is not None and len(source) > positive_int("max_frames", max_frames):
            raise InvalidInput(f"video {source.name} has {len(source):,} frames, more than max_frames="
                               f"{max_frames:,} (the state keeps a mask per frame: about 1-10 KB each); "
                               "pass init_state(..., max_frames=None) or a larger limit to accept it, "
                               "or split the video")
        return VideoState(source)

    def reset_state(self, state: VideoState) -> None:
        """Forgets every object: annotations, clicks, undo stacks, masks and fine-tuned heads
        (keeps the video)."""
        self._check_state(state)
        state.reset()

    def save_state(self, state: VideoState, path: Any, *, embed_frames: bool = True) -> Any:
        """``state.save(path, embed_frames=...)`` (SAM-2-style spelling; see
        ``ivos.video_state`` for the file format). Returns the path written."""
        return self._check_state(state).save(path, embed_frames=embed_frames)

    def load_state(self, path: Any, *, video: Any = None, cache_size: int | None = None) -> VideoState:
        """``VideoState.load(path, video=..., cache_size=...)`` (SAM-2-style spelling). The
        loaded state continues with this predictor exactly as it would have with the one
        that saved it, given the same bundles and settings; a head fine-tuned for another
        OSVOS bundle is fine-tuned again at the next ``propagate_in_video``."""
        return VideoState.load(path, video=video, cache_size=cache_size)

    @staticmethod
    def _check_state(state: Any) -> VideoState:
        if not isinstance(state, VideoState):
            raise InvalidInput(f"state must be a VideoState from init_state, got {describe(state)}")
        return state

    @classmethod
    def _track(cls, state: Any, obj_id: Any, *, create: bool = False) -> ObjectTrack:
        """Object ``obj_id``'s track, after checking ``state`` and ``obj_id``. ``create``: a
        new, not yet registered track when the object does not exist (the caller adds it to
        ``state.objects`` once its edit succeeded, so a failed call leaves no empty object)."""
        state = cls._check_state(state)
        key = check_obj_id(obj_id)
        if create and key not in state.objects:
            return ObjectTrack(obj_id=key)
        return state.track(key)

    # ---- annotation ----------------------------------------------------------------------
    def add_new_points(self, state: VideoState, frame_idx: int, obj_id: int, points: Any, labels: Any, *,
                       clear_old_points: bool = False) -> FrameResult:
        """Clicks on object ``obj_id`` in frame ``frame_idx``: points (N, 2) (x, y) original
        pixels, labels (N,) 1/0. The click network sees all clicks made on this object in
        this frame so far and the object's current mask there (annotation or propagated);
        the result becomes the object's annotation of the frame. A new ``obj_id`` creates
        the object."""
        return self._click(state, frame_idx, obj_id, points, labels, clear=clear_old_points)

    def refine(self, state: VideoState, frame_idx: int, obj_id: int, points: Any, labels: Any) -> FrameResult:
        """Corrects object ``obj_id``'s propagated mask in frame ``frame_idx`` with clicks
        (paper 2.3): the refinement network gets the object's current (propagated) mask as
        input. The corrected mask becomes an annotation, kept exactly, and an extra
        fine-tuning example of the object's head for the next ``propagate_in_video``;
        ``undo`` takes it back."""
        track = self._track(state, obj_id)
        if not track.annotations:
            raise InvalidInput(f"refine needs an annotated object: object {track.obj_id} has no annotated frame; "
                               "call add_new_points or add_new_mask on a frame and propagate_in_video first")
        idx = state.video.check_index(frame_idx)
        if idx not in track.masks:
            raise InvalidInput(f"frame_idx {idx} has no propagated mask of object {track.obj_id} to refine yet: "
                               "run propagate_in_video first")
        return self._click(state, idx, obj_id, points, labels, clear=False, correcting=True)

    def add_new_mask(self, state: VideoState, frame_idx: int, obj_id: int, mask: Any) -> FrameResult:
        """Sets object ``obj_id``'s annotation of frame ``frame_idx`` to ``mask`` (uint8/bool
        (H, W), values 0/1) and forgets the object's clicks on that frame; ``undo`` takes it
        back. A new ``obj_id`` creates the object."""
        track = self._track(state, obj_id, create=True)
        idx = state.video.check_index(frame_idx)
        h, w = state.video.height, state.video.width
        if not isinstance(mask, np.ndarray) or mask.shape != (h, w) or mask.dtype not in (np.uint8, np.bool_):
            raise InvalidInput(f"mask must be a uint8 or bool array of shape ({h}, {w}), got {describe(mask)}")
        if mask.dtype == np.uint8 and mask.max(initial=0) > 1:
            raise InvalidInput(f"mask must hold 0/1 values, got values up to {int(mask.max())}; pass mask > 0")
        m = mask.astype(np.uint8)
        edit = track.snapshot(idx)
        track.clicks.pop(idx, None)
        self._annotate(track, idx, m, edit)
        state.objects.setdefault(track.obj_id, track)
        return self._annotated_result(idx, m, track.obj_id)

    def remove_object(self, state: VideoState, obj_id: int) -> None:
        """Forgets object ``obj_id`` entirely: its clicks, undo stacks, masks and head. The
        other objects' masks stay as they are until the next ``propagate_in_video``, which no
        longer has the removed object to compete with. InvalidInput naming ``obj_id`` when
        the state has no such object."""
        track = self._track(state, obj_id)
        del state.objects[track.obj_id]

    def undo(self, state: VideoState, frame_idx: int, obj_id: int) -> FrameResult | None:
        """Takes back object ``obj_id``'s last edit of frame ``frame_idx``: a click batch
        (``add_new_points``, ``refine``) or an ``add_new_mask``. The object's clicks, mask,
        confidence and whether it is annotated on that frame become what they were before
        that edit (a refined frame gets its propagated mask back and leaves the annotated
        frames). Other frames and other objects are left as they are: the next
        ``propagate_in_video`` fine-tunes again when the annotations changed. An object
        whose edits are all undone stays in the state (``remove_object`` drops it).

        Returns the frame's mask after the undo as a ``FrameResult`` (``source``
        "annotated" or "propagated"), or None when it has no mask left.

        Raises:
            InvalidInput: ``frame_idx`` out of range, an unknown ``obj_id``, or the object has
                no edit to undo on that frame.
        """
        track = self._track(state, obj_id)
        idx = state.video.check_index(frame_idx)
        stack = track.edits.get(idx)
        if not stack:
            raise InvalidInput(f"frame_idx {idx} has no edit to undo for object {track.obj_id} (no add_new_points, "
                               "refine or add_new_mask since the state was created, reset or fully undone)")
        track.restore(idx, stack.pop())
        if not stack:
            del track.edits[idx]
        mask = track.mask(idx)
        if mask is None:
            return None
        annotated = idx in track.annotations
        return FrameResult(idx, mask, 1.0 if annotated else track.confidence.get(idx, 1.0),
                           FrameTimings(0.0, 0.0, 0.0, 0.0), "annotated" if annotated else "propagated", track.obj_id)

    def _click(self, state: VideoState, frame_idx: Any, obj_id: Any, points: Any, labels: Any, *, clear: bool,
               correcting: bool = False) -> FrameResult:
        track = self._track(state, obj_id, create=True)
        if self._clicker is None:
            raise InvalidInput("this VideoPredictor has no click model: pass click_model= to use clicks, "
                               "or use add_new_mask")
        idx = state.video.check_index(frame_idx)
        h, w = state.video.height, state.video.width
        pts = image_points("points", points, h, w)
        lab = click_labels("labels", labels, len(pts))
        old = [] if clear else track.clicks.get(idx, [])
        clicks = old + [(float(x), float(y), int(l)) for (x, y), l in zip(pts, lab)]
        base = None if clear else (track.annotations.get(idx) if idx in track.annotations else track.mask(idx))
        t0 = time.perf_counter()
        frame = state.video[idx]
        t1 = time.perf_counter()
        # set_image resets the image predictor on every video click: its cached, normalised
        # frame and its own click history are dropped and rebuilt (a letterbox + normalise per
        # click); the clicks live in the state and are all passed to predict. Kept as is for
        # now: reusing the cache across clicks on one frame is a later step of the click path.
        self._clicker.set_image(frame)
        correcting = correcting and base is not None
        view = self._focus_view(base, pts) if correcting and self.refine_focus else None
        res = self._clicker.predict(np.array([c[:2] for c in clicks], np.float32),
                                    np.array([c[2] for c in clicks], np.int64), mask_input=base, view=view)
        mask = self._limit_reach(base, res.mask, clicks, view) if correcting else res.mask
        t2 = time.perf_counter()
        edit = track.snapshot(idx)  # only now: a failed prediction leaves the state as it was
        track.clicks[idx] = clicks
        self._annotate(track, idx, mask, edit)
        state.objects.setdefault(track.obj_id, track)
        timings = FrameTimings((t1 - t0) * 1e3, res.timings.total_ms, 0.0, (t2 - t0) * 1e3)
        return FrameResult(idx, mask, 1.0, timings, "annotated", track.obj_id)

    def _limit_reach(self, base: np.ndarray, new: np.ndarray, clicks: list[tuple[float, float, int]],
                     view) -> np.ndarray:
        """(h, w) uint8: the corrected mask ``new`` where the refine settings let it reach,
        ``base`` (the mask before the correction) elsewhere: outside the focus ``view``
        (a ``Box`` or None), beyond ``refine_radius``, outside the changed regions holding a
        click (``refine_connected``)."""
        h, w = base.shape
        mask = new
        if view is not None:
            x0, y0, x1, y1 = view.clip(h, w)
            mask = base.copy()
            mask[y0:y1, x0:x1] = new[y0:y1, x0:x1]
        if self.refine_radius is not None:
            near = self._near_clicks(h, w, clicks, self.refine_radius * float(np.hypot(h, w)))
            mask = np.where(near, mask, base).astype(np.uint8)
        if self.refine_connected:
            mask = self._changes_at_clicks(base, mask, clicks)
        return mask

    def _focus_view(self, base: np.ndarray, points: np.ndarray):
        """The zoom-in ``Box`` around the connected regions of ``base`` (H, W) that ``points``
        (N, 2) (x, y) concern, and the points; None (the predictor's own view) when ``base``
        is empty."""
        import cv2

        from .geometry import zoom_box

        count, labels = cv2.connectedComponents(base.astype(np.uint8), connectivity=8)
        if count < 2:
            return None
        ys, xs = np.nonzero(labels)
        chosen = set()
        for x, y in points:
            nearest = int(np.argmin((xs - x) ** 2 + (ys - y) ** 2))
            chosen.add(int(labels[ys[nearest], xs[nearest]]))
        h, w = base.shape
        p = self._clicker
        return zoom_box(h, w, np.isin(labels, list(chosen)), points, min_side=p.min_zoom_side,
                        expansion=p.zoom_expansion)

    @staticmethod
    def _changes_at_clicks(base: np.ndarray, new: np.ndarray, clicks: list[tuple[float, float, int]]) -> np.ndarray:
        """(h, w) uint8: ``base`` with only those 8-connected regions of ``new != base`` that
        contain a click pixel taken over from ``new``."""
        import cv2

        changed = (new != base).astype(np.uint8)
        _, labels = cv2.connectedComponents(changed, connectivity=8)
        h, w = base.shape
        hit = {int(labels[min(h - 1, int(round(y))), min(w - 1, int(round(x)))]) for x, y, _ in clicks}
        hit.discard(0)  # the unchanged background label
        keep = np.isin(labels, list(hit))
        return np.where(keep, new, base).astype(np.uint8)

    @staticmethod
    def _near_clicks(h: int, w: int, clicks: list[tuple[float, float, int]], radius: float) -> np.ndarray:
        """(h, w) bool: pixels within ``radius`` px of any click."""
        yy, xx = np.ogrid[0:h, 0:w]
        near = np.zeros((h, w), bool)
        for x, y, _ in clicks:
            near |= (xx - x) ** 2 + (yy - y) ** 2 <= radius * radius
        return near

    @staticmethod
    def _annotate(track: ObjectTrack, idx: int, mask: np.ndarray, edit: FrameEdit) -> None:
        """Makes ``mask`` (H, W) {0,1} frame ``idx``'s annotation; ``edit`` (what the frame held
        before) joins the frame's undo stack."""
        mask = frozen_mask(mask)
        track.annotations[idx] = mask
        track.masks[idx] = compact_rle(mask)
        track.confidence[idx] = 1.0
        track.edits.setdefault(idx, []).append(edit)

    @staticmethod
    def _annotated_result(idx: int, mask: np.ndarray, obj_id: int) -> FrameResult:
        return FrameResult(idx, mask, 1.0, FrameTimings(0.0, 0.0, 0.0, 0.0), "annotated", obj_id)

    # ---- fine-tuning ---------------------------------------------------------------------
    def finetune(self, state: VideoState, obj_id: int, *, progress: Progress | None = None) -> FinetuneResult:
        """Fine-tunes object ``obj_id``'s head on its annotated frames now
        (``propagate_in_video`` does it when needed). Needs torch (BackendUnavailable
        otherwise). ``progress(stage, done, total)`` is called as it advances
        (``ivos.osvos_finetune.Progress``). The head (name -> read-only float32 array) goes
        into the object's track with the frames and the annotation digest it was tuned on."""
        track = self._track(state, obj_id)
        if not track.annotations:
            raise InvalidInput(f"object {track.obj_id} has no annotated frame to fine-tune on: call add_new_points "
                               "or add_new_mask first")
        frames_idx = tuple(sorted(track.annotations))
        digest = track.annotation_digest()
        cfg = self.finetune_config
        per_frame = max(4, min(cfg.augmentations, MAX_EXAMPLES // len(frames_idx)))
        if per_frame != cfg.augmentations:
            from dataclasses import replace

            cfg = replace(cfg, augmentations=per_frame)
        frames = [state.video[i] for i in frames_idx]
        report = finetune(self._osvos, frames, [track.annotations[i] for i in frames_idx], cfg, progress=progress)
        for value in report.params.values():
            value.setflags(write=False)  # bound by identity (OsvosSession.bind_head): never changed in place
        track.head, track.head_frames, track.finetune_report = report.params, frames_idx, report
        track.head_digest, track.head_model = digest, self._head_model
        return report

    def _head_is_current(self, track: ObjectTrack) -> bool:
        """Whether ``track.head`` was fine-tuned on the current annotations for this
        predictor's OSVOS bundle."""
        return (track.head is not None and track.head_digest == track.annotation_digest()
                and track.head_model in (None, self._head_model))

    # ---- propagation ---------------------------------------------------------------------
    def propagate_in_video(self, state: VideoState, *, start_frame_idx: int | None = None,
                           finetune: bool = True) -> Iterator[MultiFrameResult]:
        """Yields a ``MultiFrameResult`` per frame, holding every annotated object's mask
        (objects without an annotated frame are left out): forward from ``start_frame_idx``
        (default: the first frame any object is annotated on) to the last frame, then, when
        no start was given, backward to frame 0. Fine-tunes first (at the first ``next``)
        each object whose annotations changed since its last fine-tune or whose head was
        tuned for another OSVOS bundle (``finetune=False``: use the parent head or the last
        fine-tuned one as is). The run uses the heads as they are when it starts, bound
        before every object's network run, so generators of several states can be advanced
        alternately on one predictor. Overlaps are resolved per pixel (module docstring).

        Raises InvalidInput before yielding anything when no object is annotated, the start
        is out of range, or (``finetune=False``) an object's head was tuned for another
        OSVOS bundle."""
        self._check_state(state)
        tracks = [state.objects[k] for k in sorted(state.objects) if state.objects[k].annotations]
        if not tracks:
            raise InvalidInput("nothing to propagate: annotate a frame with add_new_points or add_new_mask first")
        start = min(min(t.annotations) for t in tracks) if start_frame_idx is None else state.video.check_index(
            start_frame_idx, "start_frame_idx")
        for track in tracks:
            if not finetune and track.head is not None and track.head_model not in (None, self._head_model):
                raise InvalidInput(f"object {track.obj_id}'s head was fine-tuned for OSVOS bundle {track.head_model}, "
                                   f"but this predictor runs {self._head_model}: pass finetune=True to fine-tune it "
                                   "again")
        return self._propagate(state, tracks, start, backward=start_frame_idx is None, finetune_first=finetune)

    def _propagate(self, state: VideoState, tracks: list[ObjectTrack], start: int, *, backward: bool,
                   finetune_first: bool) -> Iterator[MultiFrameResult]:
        if finetune_first:
            for track in tracks:
                if not self._head_is_current(track):
                    self.finetune(state, track.obj_id)
        heads = {t.obj_id: t.head if t.head is not None else self._osvos.parent_head for t in tracks}
        n = state.num_frames
        priors = {t.obj_id: t.mask(start - 1) if start > 0 and start not in t.annotations else None for t in tracks}
        at_start = None
        for idx in range(start, n):
            result = self._frame(state, tracks, heads, idx, priors)
            priors = dict(result.masks)
            if idx == start:
                at_start = priors
            yield result
        if backward and start > 0:
            priors = at_start
            for idx in range(start - 1, -1, -1):
                result = self._frame(state, tracks, heads, idx, priors)
                priors = dict(result.masks)
                yield result

    def _frame(self, state: VideoState, tracks: list[ObjectTrack], heads: dict[int, dict[str, np.ndarray]],
               idx: int, priors: dict[int, np.ndarray | None]) -> MultiFrameResult:
        """Frame ``idx`` of every track in ``tracks`` (ascending obj_id), each with its head
        (name -> float32 array) and the neighbouring frame's (H, W) uint8 mask in ``priors``
        (None: none). Stores the propagated objects' resolved masks and confidences."""
        t0 = time.perf_counter()
        frame = state.video[idx]
        t1 = time.perf_counter()
        self._thumb(state, idx, frame)
        use_prior = self.mode == "osvos+mask"
        working = None  # the letterboxed frame, made once for all objects
        probs: dict[int, np.ndarray] = {}
        confidence: dict[int, float] = {}
        object_ms: dict[int, float] = {}
        infer_ms = post_ms = 0.0
        for track in tracks:
            k = track.obj_id
            if idx in track.annotations:
                confidence[k], object_ms[k] = 1.0, 0.0
                continue
            ta = time.perf_counter()
            if working is None:
                working = self._osvos.to_working_rgb(frame)
            prior = priors.get(k)
            self._osvos.bind_head(heads[k])  # per run: another object or state may have run in between
            prob = self._osvos.predict(frame, prior if use_prior else None, working_rgb=working)
            if use_prior and self.roi_margin is not None and prior is not None and prior.any():
                self._gate(prob, prior, self.roi_margin)
            tb = time.perf_counter()
            if self.crf:
                from .ops.crf import dense_crf

                prob = dense_crf(frame, prob, **self.crf_params)
            uncertain = int(np.count_nonzero((prob > 0.2) & (prob < 0.8)))
            confidence[k] = 1.0 - uncertain / max(int(np.count_nonzero(prob > 0.5)) + uncertain, 1)
            probs[k] = prob
            tc = time.perf_counter()
            infer_ms += (tb - ta) * 1e3
            post_ms += (tc - tb) * 1e3
            object_ms[k] = (tc - ta) * 1e3
        tr = time.perf_counter()
        masks = resolve_overlaps({t.obj_id: t.annotations[idx] for t in tracks if idx in t.annotations}, probs)
        for track in tracks:
            if track.obj_id in probs:
                track.masks[idx] = compact_rle(masks[track.obj_id])
                track.confidence[idx] = confidence[track.obj_id]
        t3 = time.perf_counter()
        post_ms += (t3 - tr) * 1e3
        sources = {t.obj_id: "propagated" if t.obj_id in probs else "annotated" for t in tracks}
        timings = FrameTimings((t1 - t0) * 1e3, infer_ms, post_ms, (t3 - t0) * 1e3)
        return MultiFrameResult(idx, masks, confidence, sources, object_ms, timings)

    @staticmethod
    def _gate(prob: np.ndarray, prior: np.ndarray, margin: float) -> None:
        """Zeroes ``prob`` outside the prior's box grown by ``margin`` x its size + 10% of the
        frame size (in place)."""
        from .export_masks import mask_bbox

        x, y, bw, bh = mask_bbox(prior)
        h, w = prob.shape
        mx, my = int(margin * bw + 0.1 * w), int(margin * bh + 0.1 * h)
        x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(w, x + bw + mx), min(h, y + bh + my)
        prob[:y0] = 0.0
        prob[y1:] = 0.0
        prob[:, :x0] = 0.0
        prob[:, x1:] = 0.0

    @staticmethod
    def _thumb(state: VideoState, idx: int, frame: np.ndarray) -> None:
        """Keeps the (32, 32) uint8 grey thumbnail of frame ``idx`` (H, W, 3) in the state."""
        if idx not in state.thumbs:
            from PIL import Image

            state.thumbs[idx] = np.asarray(Image.fromarray(frame).convert("L").resize((THUMB_SIZE, THUMB_SIZE),
                                                                                     Image.BILINEAR))

    # ---- analysis ------------------------------------------------------------------------
    def _require_propagated(self, state: VideoState, what: str, obj_id: Any) -> list[ObjectTrack]:
        """The tracks ``what`` looks at (``obj_id``'s, or every annotated object's when None),
        each checked to have a mask on every frame."""
        if obj_id is None:
            self._check_state(state)
            tracks = [state.objects[k] for k in sorted(state.objects) if state.objects[k].annotations]
            if not tracks:
                raise InvalidInput(f"{what} needs a propagated video: annotate a frame and run propagate_in_video")
        else:
            tracks = [self._track(state, obj_id)]
        for track in tracks:
            missing = state.num_frames - len(track.masks)
            if not track.annotations or missing:
                raise InvalidInput(f"{what} needs a propagated video: annotate a frame and run propagate_in_video "
                                   f"({missing} of {state.num_frames} frames have no mask of object "
                                   f"{track.obj_id} yet)")
        return tracks

    def suggest_frame(self, state: VideoState, obj_id: int | None = None) -> FrameSuggestion:
        """The frame most likely wrong, without ground truth: for object ``obj_id`` among the
        frames where it is not annotated, or (None, default) over every annotated object: per
        frame the worst object's score, among the frames some object is not annotated on
        (``FrameSuggestion.obj_id`` names that object). An object's score per frame sums three
        cues, each in [0, 1]:

        * low confidence: 1 - ``FrameResult.confidence`` (uncertain pixels near the object);
        * temporal inconsistency: 1 - the lower IoU of the mask with its two neighbours
          (a good mask changes smoothly; a jump in or out of the object is an error on
          one side of it);
        * area outlier: |log((area + 1) / (median area + 1))|, clipped to 1 (the object's
          size rarely changes fast; lost or leaking masks change it a lot).
        """
        tracks = self._require_propagated(state, "suggest_frame", obj_id)
        per_object = np.stack([self._frame_scores(state, t) for t in tracks])
        with np.errstate(invalid="ignore"):
            scores = np.fmax.reduce(per_object, axis=0) if len(tracks) > 1 else per_object[0]
        if np.all(np.isnan(scores)):
            raise InvalidInput("every frame is annotated: there is no frame to suggest")
        best = int(np.nanargmax(scores))
        worst = int(np.nanargmax(np.where(np.isnan(per_object[:, best]), -np.inf, per_object[:, best])))
        return FrameSuggestion(best, float(scores[best]), scores.astype(np.float32), tracks[worst].obj_id)

    @staticmethod
    def _frame_scores(state: VideoState, track: ObjectTrack) -> np.ndarray:
        """float64 (N,): ``suggest_frame``'s score of each frame for one object (NaN where it
        is annotated)."""
        n = state.num_frames
        masks = [track.mask(i).astype(bool) for i in range(n)]
        areas = np.array([m.sum() for m in masks], np.float64)
        iou_next = np.ones(n)
        for i in range(n - 1):
            union = np.count_nonzero(masks[i] | masks[i + 1])
            iou_next[i] = np.count_nonzero(masks[i] & masks[i + 1]) / union if union else 1.0
        iou_prev = np.concatenate([[1.0], iou_next[:-1]])
        inconsistency = 1.0 - np.minimum(iou_prev, iou_next)
        unconfident = 1.0 - np.array([track.confidence.get(i, 1.0) for i in range(n)])
        outlier = np.minimum(1.0, np.abs(np.log((areas + 1) / (np.median(areas) + 1))))
        scores = (unconfident + inconsistency + outlier).astype(np.float32).astype(np.float64)
        scores[list(track.annotations)] = np.nan
        return scores

    def difficulty(self, state: VideoState, obj_id: int | None = None) -> VideoDifficulty:
        """Motion-based difficulty of the propagated video (see ``VideoDifficulty``) for object
        ``obj_id``, or (None) the hardest of the annotated objects (highest score)."""
        tracks = self._require_propagated(state, "difficulty", obj_id)
        n = state.num_frames
        if n < 2:
            return VideoDifficulty(0.0, 0.0, 0.0)
        diffs = [float(np.abs(state.thumbs[i].astype(np.float32) - state.thumbs[i - 1]).mean()) / 255.0
                 for i in range(1, n) if i in state.thumbs and i - 1 in state.thumbs]
        image_motion = float(np.mean(diffs)) if diffs else 0.0
        mask_motion = 0.0
        for track in tracks:
            ious = []
            prev = track.mask(0).astype(bool)
            for i in range(1, n):
                cur = track.mask(i).astype(bool)
                union = np.count_nonzero(prev | cur)
                ious.append(np.count_nonzero(prev & cur) / union if union else 1.0)
                prev = cur
            mask_motion = max(mask_motion, 1.0 - float(np.mean(ious)))
        return VideoDifficulty(mask_motion, mask_motion, image_motion)

    def object_masks(self, state: VideoState, frame_idx: int) -> dict[int, np.ndarray]:
        """{obj_id: uint8 (H, W) mask} of frame ``frame_idx``: every object with a mask there,
        ascending obj_id, overlaps resolved (annotations first, smaller obj_id first; the
        stored propagated masks of one propagation are already disjoint)."""
        self._check_state(state)
        idx = state.video.check_index(frame_idx)
        annotated, propagated = {}, {}
        for k in sorted(state.objects):
            t = state.objects[k]
            if idx in t.annotations:
                annotated[k] = t.annotations[idx]
            elif idx in t.masks:
                propagated[k] = t.mask(idx)
        return resolve_overlaps({**annotated, **propagated}, {})

    def masks(self, state: VideoState, obj_id: int | None = None) -> Iterator[tuple[int, Any]]:
        """In frame order, for every frame where an object has a mask: with ``obj_id``,
        (frame_idx, uint8 (H, W) mask of that object; zeros where the frame has other objects
        but not this one); without, (frame_idx, ``object_masks``: {obj_id: mask}). Masks are
        overlap-resolved."""
        self._check_state(state)
        key = None if obj_id is None else self._track(state, obj_id).obj_id
        frames = sorted({i for t in state.objects.values() for i in t.masks} if key is None
                        else state.objects[key].masks)
        for idx in frames:
            per_object = self.object_masks(state, idx)
            if key is None:
                yield idx, per_object
            else:
                yield idx, per_object.get(key, np.zeros((state.video.height, state.video.width), np.uint8))


def resolve_overlaps(fixed: dict[int, np.ndarray], probs: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """The overlap rule (module docstring): {obj_id: uint8 (H, W) mask}, ascending obj_id, no
    pixel in two objects.

    Args:
        fixed: obj_id -> (H, W) {0,1} mask taken as is (annotations; stored masks): each
            pixel goes to the first object holding it in key order (callers pass the
            annotations first, then ascending obj_id).
        probs: obj_id -> (H, W) float32 foreground probability: a pixel no fixed mask holds
            goes to the object of highest probability when it is > 0.5 (ties: smaller
            obj_id), else to the background.
    """
    out: dict[int, np.ndarray] = {}
    claimed = None
    for k, m in fixed.items():
        m = np.asarray(m, np.uint8)
        if claimed is None:
            out[k], claimed = m, m.astype(bool)
        else:
            out[k] = (m.astype(bool) & ~claimed).astype(np.uint8)
            claimed |= m.astype(bool)
    if len(probs) == 1 and claimed is None:
        (k, p), = probs.items()
        out[k] = (p > 0.5).astype(np.uint8)
    elif probs:
        ids = sorted(probs)
        stack = np.stack([probs[k] for k in ids])
        winner = np.argmax(stack, axis=0)
        free = np.take_along_axis(stack, winner[None], axis=0)[0] > 0.5
        if claimed is not None:
            free &= ~claimed
        for j, k in enumerate(ids):
            out[k] = ((winner == j) & free).astype(np.uint8)
    return {k: out[k] for k in sorted(out)}
