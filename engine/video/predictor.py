"""``VideoPredictor``: clicks on a frame -> a mask on every frame (docs/design-guide.md section 3, paper 2.2-2.3).

SAM 2's API with several objects: ``init_state(video)`` opens the video lazily;
``add_new_points(state, frame_idx, obj_id, points, labels)`` / ``add_new_mask`` annotate an
object on a frame (clicks go through the click network, ``ivos.image.click_pipeline``);
``propagate_in_video`` fine-tunes each object's OSVOS head on its annotations when they
changed and yields every object's mask per frame (``ivos.video.propagation``: the passes, the
overlap rule); ``refine`` corrects a propagated frame with clicks (paper 2.3), the corrected
frame joining the annotations; ``undo`` takes back an object's last edit of a frame;
``suggest_frame`` / ``difficulty`` read the result without ground truth
(``ivos.video.analysis``).

The predictor holds models and settings only; everything a session knows lives in its
``VideoState`` (``ivos.video.state``), so one predictor serves any number of states, even
with their propagations advanced alternately, and a saved state continues elsewhere with
identical results. Arguments are checked here, once; a failed call changes nothing in the
state. Not thread-safe (one predictor per thread; they can share the ``Model``s).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator, Protocol

import numpy as np

from .._validate import binary_mask, click_labels, image_points, positive_int
from ..errors import InvalidInput
from ..image.click_pipeline import ClickPipeline
from ..image.geometry import Box
from ..runtime.model import Model
from ..settings import (DEFAULT, MAX_VIDEO_FRAMES, ClickSettings, FinetuneConfig, MemorySettings,
                        PropagationSettings)
from .analysis import difficulty, propagated_tracks, suggest
from .frames import open_video
from .osvos.finetune import FinetuneResult, Progress, build_examples, finetune, fit_head
from .osvos.runner import OsvosRunner
from .propagation import Head, Propagator, stored_mask_stream, stored_masks
from .results import NO_TIME, FrameResult, FrameSuggestion, FrameTimings, MultiFrameResult, VideoDifficulty
from .state import VideoState, check_state
from .tracks import ObjectTrack

log = logging.getLogger("ivos")


class RefineStrategy(Protocol):
    """How ``refine`` limits a correction (None: the network's whole new mask, the measured
    best; the alternatives live in ``ivos.bench.refine_strategies``). ``view``: the box the
    click network sees (None: its own zoom view); ``merge``: the corrected (H, W) uint8 mask
    from the mask before (``base``), the network's (``proposal``) and all clicks."""

    def view(self, base: np.ndarray, points: np.ndarray) -> Box | None: ...

    def merge(self, base: np.ndarray, proposal: np.ndarray, clicks: list, view: Box | None) -> np.ndarray: ...


class VideoPredictor:
    """Interactive video object segmentation (one or several objects, SAM 2's API).

    Args:
        osvos_model: an OSVOS bundle from ``ivos.load`` (task "osvos").
        click_model: a click-refinement bundle for ``add_new_points`` and ``refine``; None =
            masks only (``add_new_mask``).
        mode, crf, crf_params, roi_margin, finetune_config, crop_context, crf_max_pixels, crf_reach, memory,
            working_size, adapt_every, adapt_steps: propagation
            settings (``ivos.settings.PropagationSettings``; mode, memory, online adaptation, the
            frame CRF's pixel budget and the memory mode's fine-tuning steps default to the OSVOS
            bundle's ``propagation`` card section, crf and crf_params to its ``postprocess``).
        propagation: a named recipe the arguments above override: "bundle" (the card's) or
            "classic" (the propagation before the memory mode became the default;
            ``ivos.settings.PROPAGATIONS``).
        click_crf: dense CRF after the click network; None = the click bundle's.
        refine_strategy: a ``RefineStrategy`` (None: the network's whole correction).

    The resolved settings are ``predictor.settings`` and ``predictor.click_settings``.
    """

    def __init__(self, osvos_model: Model, click_model: Model | None = None, *, mode: str | None = None,
                 crf: bool | None = None, finetune_config: FinetuneConfig | None = None,
                 roi_margin: float | None = DEFAULT, crf_params: dict[str, Any] | None = None,
                 click_crf: bool | None = None, refine_strategy: RefineStrategy | None = None,
                 crop_context: int | None = DEFAULT, crf_max_pixels: int = DEFAULT,
                 memory: MemorySettings | None = None, working_size: tuple[int, int] | None = None,
                 adapt_every: int | None = None, adapt_steps: int | None = None, propagation: str = "bundle",
                 crf_reach: float | None = None):
        self.settings = PropagationSettings.resolve(osvos_model.bundle, mode=mode, crf=crf, crf_params=crf_params,
                                                    roi_margin=roi_margin, finetune_config=finetune_config,
                                                    threads=osvos_model.threads, crop_context=crop_context,
                                                    crf_max_pixels=crf_max_pixels, memory=memory,
                                                    working_size=working_size, adapt_every=adapt_every,
                                                    adapt_steps=adapt_steps, propagation=propagation,
                                                    crf_reach=crf_reach)
        session = OsvosRunner(osvos_model, self.settings.working_size)
        self._propagator = Propagator(session, self.settings)
        self._head_model = f"{osvos_model.bundle.name}@{osvos_model.bundle.version}"  # recorded with each head
        self.click_settings = None if click_model is None else ClickSettings.resolve(click_model.bundle, crf=click_crf,
                                                                                   threads=click_model.threads)
        self._clicks = None if click_model is None else ClickPipeline(click_model, self.click_settings)
        self.refine_strategy = refine_strategy

    def close(self) -> None:
        """Frees the run contexts (device memory on a GPU); the models stay loaded and every
        state stays valid (another predictor can continue it)."""
        self._propagator.session.close()
        if self._clicks is not None:
            self._clicks.close()

    def __enter__(self) -> "VideoPredictor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- state ---------------------------------------------------------------------------
    def init_state(self, video: Any, *, cache_size: int = 32, fps: float | None = None,
                   max_frames: int | None = MAX_VIDEO_FRAMES) -> VideoState:
        """Opens ``video`` (file path, folder of frames, (N, H, W, 3) uint8 frames or a
        FrameSource) lazily, keeping at most ``cache_size`` decoded frames; ``fps`` sets the
        frame rate of a folder or of in-memory frames. InvalidInput for videos longer than
        ``max_frames`` (``MAX_VIDEO_FRAMES``; None: no limit)."""
        source = open_video(video, cache_size=cache_size, fps=fps)
        if max_frames is not None and len(source) > positive_int("max_frames", max_frames):
            raise InvalidInput(f"video {source.name} has {len(source):,} frames, more than max_frames="
                               f"{max_frames:,} (the state keeps a mask per frame: about 1-10 KB each); "
                               "pass init_state(..., max_frames=None) or a larger limit to accept it, "
                               "or split the video")
        return VideoState(source)

    def reset_state(self, state: VideoState) -> None:
        """Forgets every object (annotations, clicks, undo stacks, masks, heads); keeps the video."""
        check_state(state).reset()

    def save_state(self, state: VideoState, path: Any, *, embed_frames: bool = True) -> Any:
        """``state.save(path, embed_frames=...)`` (SAM-2-style spelling). Returns the path."""
        return check_state(state).save(path, embed_frames=embed_frames)

    def load_state(self, path: Any, *, video: Any = None, cache_size: int | None = None) -> VideoState:
        """``VideoState.load(path, ...)``: the state continues with this predictor as with the
        one that saved it; a head tuned for another OSVOS bundle is tuned again when needed."""
        return VideoState.load(path, video=video, cache_size=cache_size)

    # ---- annotation ----------------------------------------------------------------------
    def add_new_points(self, state: VideoState, frame_idx: int, obj_id: int, points: Any, labels: Any, *,
                       clear_old_points: bool = False) -> FrameResult:
        """Clicks on object ``obj_id`` in frame ``frame_idx``: points (N, 2) (x, y) original
        pixels, labels (N,) 1/0. The click network sees all clicks on this object in this
        frame so far and its current mask there; the result becomes the object's annotation
        of the frame. A new ``obj_id`` creates the object."""
        return self._click(state, frame_idx, obj_id, points, labels, clear=clear_old_points, correcting=False)

    def refine(self, state: VideoState, frame_idx: int, obj_id: int, points: Any, labels: Any) -> FrameResult:
        """Corrects object ``obj_id``'s propagated mask in frame ``frame_idx`` with clicks (paper
        2.3): the network gets the propagated mask as input; the corrected mask becomes an
        annotation (an extra fine-tuning example for the next propagation); ``undo`` takes
        it back."""
        track = check_state(state).track(obj_id)
        idx = state.video.check_index(frame_idx)
        if not track.annotations or idx not in track.masks:
            raise InvalidInput(f"frame_idx {idx} has no propagated mask of object {track.obj_id} to refine yet: "
                               "annotate a frame with add_new_points or add_new_mask and run propagate_in_video")
        return self._click(state, idx, obj_id, points, labels, clear=False, correcting=True)

    def add_new_mask(self, state: VideoState, frame_idx: int, obj_id: int, mask: Any) -> FrameResult:
        """Sets object ``obj_id``'s annotation of frame ``frame_idx`` to ``mask`` (uint8/bool
        (H, W), values 0/1) and forgets its clicks there; ``undo`` takes it back. A new
        ``obj_id`` creates the object."""
        track = check_state(state).track_for_edit(obj_id)
        idx = state.video.check_index(frame_idx)
        m = binary_mask("mask", mask, state.video.height, state.video.width).astype(np.uint8)
        track.annotate(idx, m, clicks=None)
        state.objects.setdefault(track.obj_id, track)
        return FrameResult(idx, m, 1.0, NO_TIME, "annotated", track.obj_id)

    def remove_object(self, state: VideoState, obj_id: int) -> None:
        """Forgets object ``obj_id`` (clicks, undo stacks, masks, head); the others keep their
        masks until the next propagation. InvalidInput for an unknown ``obj_id``."""
        del state.objects[check_state(state).track(obj_id).obj_id]

    def undo(self, state: VideoState, frame_idx: int, obj_id: int) -> FrameResult | None:
        """Takes back object ``obj_id``'s last edit of frame ``frame_idx`` (a click batch or a
        mask): its clicks, mask and confidence there become what they were (a refined frame
        gets its propagated mask back). Returns the frame's mask after the undo, or None when
        it has none. InvalidInput when there is no such edit."""
        track = check_state(state).track(obj_id)
        idx = state.video.check_index(frame_idx)
        if not track.undo(idx):
            raise InvalidInput(f"frame_idx {idx} has no edit to undo for object {track.obj_id} (no add_new_points, "
                               "refine or add_new_mask since the state was created, reset or fully undone)")
        mask = track.mask(idx)
        if mask is None:
            return None
        annotated = idx in track.annotations
        return FrameResult(idx, mask, 1.0 if annotated else track.confidence.get(idx, 1.0), NO_TIME,
                           "annotated" if annotated else "propagated", track.obj_id)

    def _click(self, state: VideoState, frame_idx: Any, obj_id: Any, points: Any, labels: Any, *, clear: bool,
               correcting: bool) -> FrameResult:
        track = check_state(state).track_for_edit(obj_id)
        if self._clicks is None:
            raise InvalidInput("this VideoPredictor has no click model: pass click_model= to use clicks, "
                               "or use add_new_mask")
        idx = state.video.check_index(frame_idx)
        pts = image_points("points", points, state.video.height, state.video.width)
        lab = click_labels("labels", labels, len(pts))
        clicks = ([] if clear else track.clicks.get(idx, [])) + [(float(x), float(y), int(v))
                                                                  for (x, y), v in zip(pts, lab)]
        base = None if clear else track.mask(idx)
        t0 = time.perf_counter()
        frame = state.video[idx]
        t1 = time.perf_counter()
        if self._clicks.image is not frame:  # the same decoded frame keeps its normalised views
            self._clicks.set_image(frame)
        strategy = self.refine_strategy if correcting and base is not None else None
        view = None if strategy is None else strategy.view(base, pts)
        res = self._clicks.run(np.array([c[:2] for c in clicks], np.float32), np.array([c[2] for c in clicks]),
                               mask=None if base is None else base.astype(bool), view=view)
        mask = res.mask if strategy is None else strategy.merge(base, res.mask, clicks, view)
        t2 = time.perf_counter()
        track.annotate(idx, mask, clicks)
        state.objects.setdefault(track.obj_id, track)
        return FrameResult(idx, mask, 1.0, FrameTimings((t1 - t0) * 1e3, res.timings.total_ms, 0.0, (t2 - t0) * 1e3),
                           "annotated", track.obj_id)

    # ---- fine-tuning and propagation -----------------------------------------------------
    def finetune(self, state: VideoState, obj_id: int, *, progress: Progress | None = None) -> FinetuneResult:
        """Fine-tunes object ``obj_id``'s head on its annotated frames now (``propagate_in_video``
        does it when needed; needs torch). ``progress(stage, done, total)`` is called as it
        advances. The head goes into the object's track with what it was tuned on."""
        track = check_state(state).track(obj_id)
        if not track.annotations:
            raise InvalidInput(f"object {track.obj_id} has no annotated frame to fine-tune on: call add_new_points "
                               "or add_new_mask first")
        return self._finetune_track(state, track, progress=progress)

    def _finetune_track(self, state: VideoState, track: ObjectTrack, *, progress: Progress | None = None,
                        reuse: dict[str, np.ndarray] | None = None) -> FinetuneResult:
        frames_idx = tuple(sorted(track.annotations))
        digest = track.annotation_digest()
        cfg = self.settings.finetune.for_frames(len(frames_idx))
        report = finetune(self._propagator.session, [state.video[i] for i in frames_idx],
                          [track.annotations[i] for i in frames_idx], cfg, progress=progress,
                          reuse=reuse if len(frames_idx) == 1 else None)
        for value in report.params.values():
            value.setflags(write=False)  # bound by identity (OsvosRunner.bind_head): never changed in place
        track.head, track.head_frames, track.finetune_report = report.params, frames_idx, report
        track.head_digest, track.head_model = digest, self._head_model
        return report

    def propagate_in_video(self, state: VideoState, *, start_frame_idx: int | None = None,
                           finetune: bool = True) -> Iterator[MultiFrameResult]:
        """Yields a ``MultiFrameResult`` per frame with every annotated object's mask: forward
        from ``start_frame_idx`` (default: the first annotated frame of any object) to the
        end, then, without a start, backward to frame 0. At the first ``next`` it fine-tunes
        each object whose head is not current (``finetune=False``: use the heads as they
        are). InvalidInput before yielding when nothing is annotated, the start is out of
        range, or (``finetune=False``) a head was tuned for another OSVOS bundle."""
        tracks = check_state(state).annotated_tracks()
        if not tracks:
            raise InvalidInput("nothing to propagate: annotate a frame with add_new_points or add_new_mask first")
        start = min(min(t.annotations) for t in tracks) if start_frame_idx is None else state.video.check_index(
            start_frame_idx, "start_frame_idx")
        for track in tracks:
            if not finetune and track.head_model not in (None, self._head_model):
                raise InvalidInput(f"object {track.obj_id}'s head was fine-tuned for OSVOS bundle {track.head_model}, "
                                   f"but this predictor runs {self._head_model}: pass finetune=True to fine-tune it "
                                   "again")
        return self._propagate(state, tracks, start, backward=start_frame_idx is None, finetune_first=finetune)

    def _propagate(self, state: VideoState, tracks: list[ObjectTrack], start: int, *, backward: bool,
                   finetune_first: bool) -> Iterator[MultiFrameResult]:
        stale = [t for t in tracks if not (t.head is not None and t.head_digest == t.annotation_digest()
                                           and t.head_model in (None, self._head_model))] \
            if finetune_first and self.settings.finetune.steps > 0 else []  # 0 steps: the parent head as it is
        quick = self.settings.finetune.quick_steps > 0
        early: dict[int, tuple[Head, dict[str, np.ndarray]]] = {}  # obj_id -> (quick head, its examples)
        for track in stale:
            if quick:
                early[track.obj_id] = self._quick_head(state, track)
            else:
                self._finetune_track(state, track)
        parent = self._propagator.session.parent_head
        heads = {t.obj_id: early[t.obj_id][0] if t.obj_id in early else parent if t.head is None else t.head
                 for t in tracks}
        by_id = {t.obj_id: t for t in stale}

        def whole_finetune() -> dict[int, Head]:  # after the first frames
            tuned = {k: self._finetune_track(state, by_id[k], reuse=examples).params for k, (_, examples) in early.items()}
            early.clear()  # the quick examples' features (~12 MB each) are not kept for the rest of the run
            return tuned
        finish = (self.settings.finetune.quick_frames, whole_finetune) if early else None
        yield from self._propagator.run(state, tracks, heads, start, backward=backward, finish=finish)

    def _quick_head(self, state: VideoState, track: ObjectTrack) -> tuple[Head, dict]:
        """(A head fitted by the quick start's config (``FinetuneConfig.quick``), the examples
        it fitted on) for ``track``; the track keeps its head (the whole fine-tune replaces it)."""
        frames_idx = sorted(track.annotations)
        cfg = self.settings.finetune.for_frames(len(frames_idx)).quick
        t0 = time.perf_counter()
        examples = build_examples(self._propagator.session, [state.video[i] for i in frames_idx],
                                  [track.annotations[i] for i in frames_idx], cfg)
        head, loss = fit_head(examples, self._propagator.session.parent_head, cfg)
        log.info("ivos: object %d quick start: %d steps on %d examples in %.1f s (loss %.4f)", track.obj_id,
                 cfg.steps, len(examples["low"]), time.perf_counter() - t0, loss)
        return head, examples

    # ---- reading the result --------------------------------------------------------------
    def suggest_frame(self, state: VideoState, obj_id: int | None = None) -> FrameSuggestion:
        """The frame most likely wrong, without ground truth, for object ``obj_id`` or (None)
        over every annotated object (``ivos.video.analysis.frame_scores``: low confidence,
        temporal inconsistency, area outliers)."""
        return suggest(state, propagated_tracks(state, "suggest_frame", obj_id))

    def difficulty(self, state: VideoState, obj_id: int | None = None) -> VideoDifficulty:
        """Motion-based difficulty of the propagated video for ``obj_id`` or (None) the hardest
        annotated object."""
        return difficulty(state, propagated_tracks(state, "difficulty", obj_id))

    def object_masks(self, state: VideoState, frame_idx: int) -> dict[int, np.ndarray]:
        """{obj_id: uint8 (H, W) mask} of frame ``frame_idx`` for every object with a mask there,
        ascending obj_id, overlaps resolved (annotations first, smaller obj_id first)."""
        state = check_state(state)
        return stored_masks(state, state.video.check_index(frame_idx))

    def masks(self, state: VideoState, obj_id: int | None = None) -> Iterator[tuple[int, Any]]:
        """In frame order, for every frame where an object has a mask: with ``obj_id``,
        (frame_idx, that object's uint8 (H, W) mask, zeros where it has none); without,
        (frame_idx, ``object_masks``). Overlaps resolved."""
        key = None if obj_id is None else check_state(state).track(obj_id).obj_id
        return stored_mask_stream(check_state(state), key)
