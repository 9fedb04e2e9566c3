"""The memory mode's per-run state and per-frame work (``PropagationSettings.use_memory``).

``ivos.video.propagation.Propagator`` drives the frames; in memory mode it hands each frame to the
run's ``MemoryRun`` for every object's probability (then applies the CRF and the overlap rule
as in the other modes). See ``ivos.video.memory_read`` for the matching itself and ``ivos.video.flow`` for
the warp.
"""
from __future__ import annotations

import numpy as np

from ..postprocess import Region, gate_box, gate_to_prior
from ..settings import PropagationSettings
from .memory_read import FrameKeys, ObjectMemory, Projection
from .osvos.runner import Features, Letterbox, OsvosRunner
from .state import VideoState
from .tracks import ObjectTrack

Head = dict[str, np.ndarray]


class MemoryRun:
    """One propagation run's memory-mode state (``PropagationSettings.use_memory``): each
    object's memory (``ivos.video.memory_read``), the key projection (the bundle's learned one, else
    fitted on the first annotated frame), the flow warper and the previous frame's flow image.

    Per frame: the neighbouring frame's masks are warped by optical flow onto this frame
    (``ivos.video.flow``); the trunk graph runs once on the union of the objects' motion gates
    (``OsvosRunner.trunk``), its keys read each object's memory; each object's head graph
    runs on its own window of the shared features (``OsvosRunner.head_window``) with the warped
    mask and the readout as its prior, and the readout is mixed into its probability;
    confident frames join the memory every ``MemorySettings.every`` frames."""

    def __init__(self, session: OsvosRunner, state: VideoState, tracks: list[ObjectTrack], heads: dict[int, Head],
                 settings: PropagationSettings):
        self.session = session
        self.settings = settings
        self.warper = None  # made on first use: OpenCV only when the recipe warps (MemorySettings.warp)
        box = session.letterbox(state.video.height, state.video.width)
        self.valid = (box.rh, box.rw)
        self.scale = box.rw / box.width
        self.memories = {t.obj_id: ObjectMemory() for t in tracks}
        # the bundle's learned key projection, else the first annotated frame's principal axes
        self.projection: Projection | None = bundle_projection(session.model.bundle)
        self._grey: tuple[int, np.ndarray] | None = None  # (frame index, flow image) of the last frame
        self._keys: tuple[int, FrameKeys] | None = None  # (frame index, its keys) of the last frame
        # (frame index, its trunk features, the objects whose heads read them): online
        # adaptation fits on these features instead of running the trunk again
        self.last_inputs: tuple[int, Features, frozenset[int]] | None = None
        self._since_added = 0
        self._head_sizes: dict[int, tuple[int, int]] = {}  # obj_id -> its last head window's (width, height)
        # the memory is read only when its readout is used (mixed into the output or the prior, or a veto)
        self.reads = settings.memory.weight > 0 or settings.memory.prior_readout > 0 or settings.memory.veto_below > 0
        for idx in sorted({i for t in tracks for i in t.annotations} if self.reads else ()):
            features = session.trunk(session.to_working_rgb(state.video[idx]), None)
            if self.projection is None:
                self.projection = Projection.fit(features.high[0])
            fk = FrameKeys.of(features.high[0], features.crop[:2], self.valid, self.projection)
            for t in tracks:
                if idx in t.annotations:
                    self._add(t.obj_id, idx, fk, t.annotations[idx], annotated=True)

    def _add(self, obj_id: int, idx: int, fk: FrameKeys, mask: np.ndarray, *, annotated: bool) -> None:
        """Frame ``idx``'s keys near object ``obj_id``'s (H, W) mask, with the mask's values."""
        if not mask.any():
            return
        values = fk.values(self.session.to_working_mask(mask))
        x0, y0, x1, y1 = gate_box(mask, self.settings.roi_margin or 0.5)
        near = fk.inside((x0 * self.scale, y0 * self.scale, x1 * self.scale, y1 * self.scale))
        self.memories[obj_id].add(idx, fk.keys[near], values[near], annotated=annotated,
                                  capacity=self.settings.memory.capacity)

    def restart(self) -> None:
        """The backward pass starts again from the start frame: no flow from the last frame."""
        self._grey = None
        self._since_added = 0

    def warp_priors(self, idx: int, frame: np.ndarray, priors: dict[int, np.ndarray | None]
                    ) -> dict[int, np.ndarray | None]:
        """``priors`` (the neighbouring frame's masks) warped onto frame ``idx`` by optical flow
        (as they are without ``MemorySettings.warp``)."""
        if not self.settings.memory.warp:
            return priors
        if self.warper is None:
            from .flow import MaskWarper

            self.warper = MaskWarper()
        grey = self.warper.grey(frame)
        last, self._grey = self._grey, (idx, grey)
        if last is None or abs(last[0] - idx) != 1 or not any(p is not None for p in priors.values()):
            return priors
        sampling = self.warper.flow(grey, last[1], frame.shape[:2])
        return {k: None if p is None else self.warper.warp(p, sampling) for k, p in priors.items()}

    def probabilities(self, idx: int, frame: np.ndarray, working: np.ndarray, heads: dict[int, Head],
                      priors: dict[int, np.ndarray | None]) -> dict[int, np.ndarray]:
        """{obj_id: (H, W) float32 probability} on frame ``idx`` of the objects in ``heads``
        (each with its head and its warped prior, None: none): one trunk run on the union of
        the objects' motion gates (the whole frame when one has no prior), then per object
        the memory read, the head on prior + readout, the readout and the warped prior mixed
        into the output (``MemorySettings``), the gate."""
        settings, session = self.settings, self.session
        gates = {k: gate_box(p, settings.roi_margin) if p is not None and settings.roi_margin is not None and p.any()
                 else None for k, p in priors.items() if k in heads}
        box = session.letterbox(*frame.shape[:2])
        crop = None
        if settings.crop_context is not None and gates and all(g is not None for g in gates.values()):
            union = (min(g[0] for g in gates.values()), min(g[1] for g in gates.values()),
                     max(g[2] for g in gates.values()), max(g[3] for g in gates.values()))
            crop = session.crop_for(union, box, settings.crop_context)
        features = session.trunk(working, crop)
        fk = None
        if self.reads:
            fk = FrameKeys.of(features.high[0], features.crop[:2], self.valid, self.projection)
            self._keys = (idx, fk)
        mem = settings.memory
        probs = {}
        for k, head in heads.items():
            prior = priors.get(k)
            prior_w = None if prior is None else session.to_working_mask(prior)
            readout = None
            if fk is not None and len(self.memories[k]):
                readout = fk.to_working(self.memories[k].read(fk.keys, mem), session.working)
                if mem.prior_readout > 0:
                    up = np.kron(readout, np.ones((4, 4), np.float32))  # stride 4 -> working pixels
                    prior_w = mem.prior_readout * up if prior_w is None else (
                        (1.0 - mem.prior_readout) * prior_w + mem.prior_readout * up)
            logits = session.head_logits(self._head_features(k, features, gates.get(k), box, len(heads)), prior_w, head)
            prob = session.logits_to_frame(logits, box)
            w_read = mem.weight if readout is not None else 0.0
            w_prior = mem.prior_weight if prior is not None else 0.0
            if w_read or w_prior:
                fused = (1.0 - w_read - w_prior) * prob
                if w_read:
                    fused += w_read * np.clip(session.working_map_to_frame(readout, *prob.shape), 0.0, 1.0)
                if w_prior:
                    fused += w_prior * prior
                prob = fused
            if readout is not None and mem.veto_below > 0:
                prob[session.working_map_to_frame(readout, *prob.shape) < mem.veto_below] = 0.0
            if gates.get(k) is not None:
                gate_to_prior(prob, gates[k])
            probs[k] = prob
        self.last_inputs = (idx, features, frozenset(heads))
        return probs

    def _head_features(self, obj_id: int, features: Features, gate: Region | None, box: Letterbox,
                       objects: int) -> Features:
        """The part of the frame's shared ``features`` that object ``obj_id``'s head runs on: with
        several objects, the window around its own ``gate`` (``OsvosRunner.head_window``), not
        the union of all gates that the trunk ran on (a head on the union costs about as much
        again per object when the objects are apart); alone, or without a gate, all of them."""
        if objects < 2 or gate is None:
            return features
        window = self.session.head_window(gate, box, features.crop, self._head_sizes.get(obj_id))
        if window is None:
            self._head_sizes.pop(obj_id, None)
            return features
        self._head_sizes[obj_id] = (window[2] - window[0], window[3] - window[1])
        return features.window(window)

    def remember(self, idx: int, masks: dict[int, np.ndarray], conf: dict[int, float]) -> None:
        """Frame ``idx``'s propagated masks ({obj_id: (H, W) uint8}) join their objects'
        memories every ``every`` frames when every one is confident (``conf``, ``MemorySettings``)."""
        settings = self.settings.memory
        self._since_added += 1
        if self._since_added < settings.every or not conf or min(conf.values()) < settings.min_confidence:
            return
        self._since_added = 0
        if self._keys is None or self._keys[0] != idx:
            return
        for k, mask in masks.items():
            self._add(k, idx, self._keys[1], mask, annotated=False)


def bundle_projection(bundle) -> Projection | None:
    """The OSVOS bundle's learned key projection (``artifacts.memory_projection``: an npz of
    ``mean`` (C,) and ``axes`` (d, C) float32, ``training.memory_projection``), or None."""
    if not bundle.has_artifact("memory_projection"):
        return None
    from ..errors import ModelError

    path = bundle.artifact("memory_projection")
    with np.load(path) as z:
        mean, axes = z.get("mean"), z.get("axes")
        if mean is None or axes is None or mean.ndim != 1 or axes.ndim != 2 or axes.shape[1] != mean.shape[0]:
            raise ModelError(f"{path}: must hold 'mean' (C,) and 'axes' (d, C) arrays")
        return Projection(mean.astype(np.float32), axes.astype(np.float32))
