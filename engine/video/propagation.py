"""Propagation: every annotated object's mask on every frame, from its OSVOS head.

In "memory" mode (``ivos.video.memory_propagation.MemoryRun``) each frame runs the bundle's trunk
once for all objects, and each object's head reads the flow-warped previous mask plus a
memory readout (``ivos.video.memory_read``); the other modes run the whole OSVOS graph per object,
as described below.

``Propagator.run`` walks the video forward from a start frame to the end, then (optionally)
backward from it to frame 0. On each frame it decodes and letterboxes the frame once, runs
the OSVOS network once per object with that object's head bound (``OsvosRunner.bind_head``,
so states propagated alternately on one session each use their own heads) and, in
"osvos+mask" mode, the neighbouring frame's mask of that object as the prior, on a crop
around where the object can have moved when the graph allows it (``crop_context``); then
gates the probability to that region, refines it with the dense CRF (on the region
around the object: ``ivos.postprocess.object_region``) and resolves the objects against each
other.

The overlap rule: no pixel belongs to two objects. On a propagated frame each object's
foreground probability (after the CRF) is compared per pixel: the pixel goes to the object
with the highest probability when that is above 0.5, else to the background (argmax over the
objects, ties to the smaller obj_id). An annotation counts as probability 1 inside its mask
and beats any propagated probability; where two objects' annotations of one frame overlap,
the smaller obj_id wins. With one object nothing changes: the mask is ``probability > 0.5``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Callable, Iterator

import numpy as np

from ..postprocess import confidence, gate_box, gate_to_prior, object_region, refine_with_crf
from ..settings import PropagationSettings
from .memory_propagation import MemoryRun
from .osvos.runner import OsvosRunner
from .results import FrameTimings, MultiFrameResult
from .state import VideoState
from .tracks import THUMB_SIZE, ObjectTrack, compact_rle

Head = dict[str, np.ndarray]
log = logging.getLogger("ivos")


class Propagator:
    """Runs OSVOS heads over a video's frames. Not thread-safe (one per predictor)."""

    def __init__(self, session: OsvosRunner, settings: PropagationSettings):
        self.session = session
        self.settings = settings
        self._memory: MemoryRun | None = None

    def run(self, state: VideoState, tracks: list[ObjectTrack], heads: dict[int, Head], start: int, *,
            backward: bool, finish: tuple[int, Callable[[], dict[int, Head]]] | None = None
            ) -> Iterator[MultiFrameResult]:
        """Frames ``start`` .. last, then (``backward``) ``start - 1`` .. 0, of ``tracks``
        (ascending obj_id) with ``heads`` (obj_id -> head). The first prior of each object is
        its mask on the frame before ``start`` unless it is annotated on ``start``.
        ``finish`` (n, call): after n propagated frames (or at the end of a shorter run)
        ``call()`` returns the heads that replace those of its objects for the rest of the run
        (the quick start's whole fine-tune)."""
        after, call = finish if finish is not None else (0, None)
        done = 0
        priors = {t.obj_id: t.mask(start - 1) if start > 0 and start not in t.annotations else None for t in tracks}
        self._memory = MemoryRun(self.session, state, tracks, heads, self.settings) \
            if self.settings.use_memory else None
        at_start = None
        adapter = OnlineAdaptation(self.session, state, tracks, heads, self.settings, self._memory) \
            if self.settings.adapt_every > 0 and adaptation_possible() else None
        if adapter is not None:
            heads = adapter.heads  # adapted copies: the tracks keep their annotation-tuned heads
        order = list(range(start, state.num_frames)) + (list(range(start - 1, -1, -1)) if backward else [])
        for idx in order:
            if call is not None and done == after:
                heads.update(call())
                call = None
            if idx == start - 1:  # the backward pass starts again from the start frame's masks
                priors = at_start
                if self._memory is not None:
                    self._memory.restart()
            result = self.frame(state, tracks, heads, idx, priors)
            priors = dict(result.masks)
            if idx == start:
                at_start = priors
            if adapter is not None:
                adapter.after(idx, result)
            done += "propagated" in result.sources.values()
            yield result
        if call is not None:  # a run shorter than ``after`` frames: the objects still get their heads
            heads.update(call())

    def frame(self, state: VideoState, tracks: list[ObjectTrack], heads: dict[int, Head], idx: int,
              priors: dict[int, np.ndarray | None]) -> MultiFrameResult:
        """Frame ``idx`` of every track, each with its head and its (H, W) uint8 mask on the
        neighbouring frame in ``priors`` (None: none). Stores the propagated objects'
        resolved masks and confidences in their tracks."""
        t0 = time.perf_counter()
        frame = state.video[idx]
        t1 = time.perf_counter()
        store_thumbnail(state, idx, frame)
        working = None  # the letterboxed frame, made once for all objects
        infer_ms = post_ms = 0.0
        memory = self._memory
        shared: dict[int, np.ndarray] = {}  # memory mode: every object's probability from one trunk run
        if memory is not None:
            priors = memory.warp_priors(idx, frame, priors)
            pending = {t.obj_id: heads[t.obj_id] for t in tracks if idx not in t.annotations}
            if pending:
                ta = time.perf_counter()
                working = self.session.to_working_rgb(frame)
                shared = memory.probabilities(idx, frame, working, pending, priors)
                infer_ms += (time.perf_counter() - ta) * 1e3
        probs: dict[int, np.ndarray] = {}
        conf: dict[int, float] = {}
        object_ms: dict[int, float] = {}
        for track in tracks:
            k = track.obj_id
            if idx in track.annotations:
                conf[k], object_ms[k] = 1.0, 0.0
                continue
            ta = time.perf_counter()
            if working is None:
                working = self.session.to_working_rgb(frame)
            if memory is not None:
                probs[k] = shared[k]
            else:
                probs[k] = self._object_probability(frame, working, heads[k], priors.get(k))
            tb = time.perf_counter()
            region = object_region(probs[k], self.settings.crf, self.settings.crf_reach) \
                if self.settings.crf.enabled else None
            if region is not None:
                refine_with_crf(frame, probs[k], region, self.settings.crf)
            conf[k] = confidence(probs[k])
            tc = time.perf_counter()
            infer_ms += (tb - ta) * 1e3
            post_ms += (tc - tb) * 1e3
            object_ms[k] = (tc - ta) * 1e3
        tr = time.perf_counter()
        masks = resolve_overlaps({t.obj_id: t.annotations[idx] for t in tracks if idx in t.annotations}, probs)
        for track in tracks:
            if track.obj_id in probs:
                track.masks[idx] = compact_rle(masks[track.obj_id])
                track.confidence[idx] = conf[track.obj_id]
        if memory is not None:
            memory.remember(idx, {k: masks[k] for k in probs}, {k: conf[k] for k in probs})
        t3 = time.perf_counter()
        post_ms += (t3 - tr) * 1e3
        sources = {t.obj_id: "propagated" if t.obj_id in probs else "annotated" for t in tracks}
        timings = FrameTimings((t1 - t0) * 1e3, infer_ms, post_ms, (t3 - t0) * 1e3)
        return MultiFrameResult(idx, masks, conf, sources, object_ms, timings)

    def _object_probability(self, frame: np.ndarray, working: np.ndarray, head: Head,
                            prior: np.ndarray | None) -> np.ndarray:
        """(H, W) float32 foreground probability of one object, gated to the prior's reach."""
        use_prior = self.settings.use_prior and prior is not None
        gate = gate_box(prior, self.settings.roi_margin) if (
            use_prior and self.settings.roi_margin is not None and prior.any()) else None
        context = self.settings.crop_context
        self.session.bind_head(head)  # per run: another object or state may have run in between
        prob = self.session.predict(frame, prior if use_prior else None, working_rgb=working,
                                    window=gate if context is not None else None, context=context or 0)
        if gate is not None:
            gate_to_prior(prob, gate)
        return prob


class OnlineAdaptation:
    """Online adaptation (OnAVOS-style): every ``adapt_every`` propagated frames, the frames
    whose propagated mask is confident join an object's fine-tuning set and its head is tuned
    on for ``adapt_steps`` more steps from where it is (annotated frames + the latest confident
    frames); the adapted heads serve the rest of the run only (the tracks keep their heads).

    Two ways to get the examples:
    - In memory mode (``memory`` given) the trunk already ran on every frame: a confident
      frame's example is that run's features with its propagated mask as the target and a
      deformed copy of it (or nothing) as the prior (no trunk run, no augmentation), and the
      annotated frames' are made once per run (``ANNOTATED_EXAMPLES`` augmented copies of each).
      An adaptation then costs ``adapt_steps`` optimiser steps only.
    - Otherwise each adaptation re-runs ``finetune`` (4 augmentations of every frame through
      the whole network, then the steps)."""

    RECENT = 3
    """Confident propagated frames an adaptation fits on: the latest, where the object looks as now."""

    ANNOTATED_EXAMPLES = 4
    """Examples per annotated frame in memory mode: augmented copies as fine-tuning makes them
    (the frame itself first), each one trunk run, made once per run."""

    def __init__(self, session: OsvosRunner, state: VideoState, tracks: list[ObjectTrack], heads: dict[int, Head],
                 settings: PropagationSettings, memory: MemoryRun | None = None):
        self.session, self.state, self.settings, self.memory = session, state, settings, memory
        self.heads = dict(heads)
        self.tracks = {t.obj_id: t for t in tracks}
        self.confident: dict[int, list[int]] = {t.obj_id: [] for t in tracks}
        self.examples: dict[int, list[dict[str, np.ndarray]]] = {t.obj_id: [] for t in tracks}  # memory mode
        self._annotated: dict[int, list[dict[str, np.ndarray]]] | None = None
        self._rng = np.random.default_rng(settings.finetune.seed)
        self._since = 0

    def after(self, idx: int, result: MultiFrameResult) -> None:
        """Takes frame ``idx``'s result; adapts the heads when it is time."""
        self._since += 1
        for k, source in result.sources.items():
            if source == "propagated" and result.confidence[k] >= self.settings.adapt_min_confidence \
                    and result.masks[k].any():
                self.confident[k].append(idx)
                if self.memory is not None:
                    self._keep(k, idx, result.masks[k])
        if self._since < self.settings.adapt_every:
            return
        self._since = 0
        if self.memory is not None:
            self._adapt_from_features()
        else:
            self._adapt_by_finetune()

    def _keep(self, obj_id: int, idx: int, mask: np.ndarray) -> None:
        """Keeps frame ``idx``'s trunk features of ``obj_id`` (the memory run's last ones) with
        its propagated (H, W) mask; examples are made of them only when an adaptation uses them."""
        last = self.memory.last_inputs
        if last is None or last[0] != idx or obj_id not in last[2]:
            return
        kept = self.examples[obj_id]
        kept.append({"features": last[1], "mask": mask})
        del kept[:-self.RECENT]

    def _recent_examples(self, obj_id: int) -> list[dict[str, np.ndarray]]:
        """The kept frames of ``obj_id`` as examples: the propagated mask (working pixels of the
        features' window) as the target and, as the prior, a deformed copy of it or nothing (not
        the prior the head read: that one is the target moved by the flow, and a head fitted to
        copy it drifts with its own mistakes). Made here, for the few frames an adaptation uses,
        not for every frame kept."""
        from .osvos.finetune import deform_mask, pool4

        out = []
        for kept in self.examples[obj_id]:
            features = kept["features"]
            x0, y0, x1, y1 = features.crop
            target = self.session.to_working_mask(kept["mask"])[y0:y1, x0:x1]
            zero = self._rng.random() < self.settings.finetune.zero_prior_fraction
            prior = np.zeros_like(target) if zero else deform_mask(target, self._rng, self.session.working)
            out.append({"low": features.low[0], "high": features.high[0], "prior": pool4(prior)[None],
                        "target": pool4(target)[None]})
        return out

    def _annotated_examples(self) -> dict[int, list[dict[str, np.ndarray]]]:
        """obj_id -> the annotated frames' examples, made on first use: ``ANNOTATED_EXAMPLES``
        augmented copies of each (``build_examples``, as fine-tuning makes them)."""
        if self._annotated is not None:
            return self._annotated
        from .osvos.finetune import build_examples

        cfg = replace(self.settings.finetune, augmentations=self.ANNOTATED_EXAMPLES)
        self._annotated = {}
        for k, track in self.tracks.items():
            idx = sorted(track.annotations)
            stacked = build_examples(self.session, [self.state.video[i] for i in idx],
                                     [track.annotations[i] for i in idx], cfg)
            self._annotated[k] = [{key: v[j] for key, v in stacked.items()} for j in range(len(stacked["low"]))]
        return self._annotated

    def _adapt_from_features(self) -> None:
        from .osvos.finetune import fit_head

        cfg = replace(self.settings.finetune, steps=self.settings.adapt_steps)
        annotated = self._annotated_examples()
        for k in self.tracks:
            if not self.examples[k]:
                continue
            self.heads[k], _ = fit_head(annotated[k] + self._recent_examples(k), self.heads[k], cfg)

    def _adapt_by_finetune(self) -> None:
        from .osvos.finetune import finetune  # torch: only when adaptation is on

        cfg = replace(self.settings.finetune, steps=self.settings.adapt_steps, augmentations=4)
        for k, track in self.tracks.items():
            recent = self.confident[k][-self.RECENT:]
            if not recent:
                continue
            frames_idx = sorted(track.annotations) + recent
            masks = [track.annotations[i] if i in track.annotations else track.mask(i) for i in frames_idx]
            report = finetune(self.session, [self.state.video[i] for i in frames_idx], masks, cfg, init=self.heads[k])
            self.heads[k] = report.params


def adaptation_possible() -> bool:
    """Whether torch (which online adaptation fits with) imports here; logs a warning when
    not: propagation goes on with the heads as they are, as it does without fine-tuning."""
    import importlib

    try:
        importlib.import_module("torch")
    except ImportError:
        log.warning("ivos: online adaptation needs PyTorch (pip install torch): propagating without it")
        return False
    return True


def store_thumbnail(state: VideoState, idx: int, frame: np.ndarray) -> None:
    """Keeps the (32, 32) uint8 grey thumbnail of frame ``idx`` (H, W, 3) in the state."""
    if idx not in state.thumbs:
        from PIL import Image

        grey = Image.fromarray(frame).convert("L").resize((THUMB_SIZE, THUMB_SIZE), Image.BILINEAR)
        state.thumbs[idx] = np.asarray(grey)


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


def stored_masks(state: VideoState, idx: int) -> dict[int, np.ndarray]:
    """{obj_id: uint8 (H, W) mask} of frame ``idx`` from the state's stored masks, every object
    with a mask there, overlaps resolved (annotations first, then ascending obj_id)."""
    tracks = [state.objects[k] for k in sorted(state.objects)]
    annotated = {t.obj_id: t.annotations[idx] for t in tracks if idx in t.annotations}
    propagated = {t.obj_id: t.mask(idx) for t in tracks if idx not in t.annotations and idx in t.masks}
    return resolve_overlaps({**annotated, **propagated}, {})


def stored_mask_stream(state: VideoState, obj_id: int | None) -> Iterator[tuple[int, Any]]:
    """In frame order, for every frame where an object has a mask: (frame_idx, ``stored_masks``),
    or with ``obj_id`` (frame_idx, that object's mask; zeros where it has none)."""
    frames = sorted({i for t in state.objects.values() for i in t.masks} if obj_id is None
                    else state.objects[obj_id].masks)
    for idx in frames:
        per_object = stored_masks(state, idx)
        if obj_id is None:
            yield idx, per_object
        else:
            yield idx, per_object.get(obj_id, np.zeros((state.video.height, state.video.width), np.uint8))
