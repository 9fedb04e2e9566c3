"""The click path on one image: clicks in, probability map out (docs/design-guide.md section 3).

Stages: choose the view (the full image first, then a zoom-in square around the current
mask and the clicks), crop + resize + normalise the image into the bound input buffer
(cached while the view stays), carry the previous click's low-resolution logits into the
mask buffer (or resize a given mask into it), render the clicks into the bound click buffer,
run the network (twice with ``flip``), turn the view's logits into a probability map of the
original image (with ``refocus_below``: a whole-image view that found a small mask is followed
by a second look through a zoom-in around it), clamp the clicked pixels (hard constraint),
optionally refine with the dense CRF on the view's region (only on masks of at least
``crf_min_area`` of the image), threshold.

``ClickPipeline`` takes inputs that are already checked (``ImagePredictor`` and
``VideoPredictor`` validate at their public boundary); it keeps no click history.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import InvalidInput
from ..ops.clicks import render_clicks, render_clicks_cuda
from ..postprocess import CrfCache, clamp_clicks, clamp_strokes, refine_with_crf
from ..runtime.model import Model
from ..settings import ClickSettings
from .crops import ClickView, Normaliser
from .geometry import Box, focus_box, full_view, zoom_box

ClickEncoder = Callable[[int, np.ndarray, list, np.ndarray], None]
"""``encoder(size, clicks, strokes, out)``: writes the encoding of ``clicks`` (N, 3) float32
(x, y, label) and ``strokes`` [(points (M, 2) float32, label)] (working pixels, pixel centres
at integers) into ``out`` (C, size, size) float32, the bound ``clicks`` input. The runtime
renders the paper's one-channel +/- Gaussian clicks; other encodings (the Table-1 ablations,
``ivos.evaluation.distmap``) are passed to the predictor by whoever evaluates them."""


@dataclass(frozen=True)
class Timings:
    """Milliseconds per stage of one prediction."""

    prepare_ms: float  # crop/resize/normalise the image (0 when the view is cached) + mask
    render_ms: float  # click/stroke encoding
    infer_ms: float  # the network
    post_ms: float  # upsample, sigmoid, clamp
    crf_ms: float  # dense CRF (0 when off)
    total_ms: float


@dataclass(frozen=True)
class ClickResult:
    """One prediction.

    Attributes:
        mask: uint8 (H, W) in {0, 1}.
        probabilities: float32 (H, W) foreground probability (after the CRF when on).
        box: the view the network saw (original pixels).
        timings: per-stage milliseconds.
        backend: what ran the network.
        low_res_logits: float32 (S, S) the network's logits of ``box`` at the working size S
            (after flip averaging, before clamp and CRF): the state the next click of the
            same object starts from (SAM's low-resolution masks).
    """

    mask: np.ndarray
    probabilities: np.ndarray
    box: Box
    timings: Timings
    backend: str
    low_res_logits: np.ndarray | None = None


@dataclass(frozen=True)
class Stroke:
    """A polyline (M, 2) float32 of (x, y) original pixels (the click convention of
    ``ImagePredictor.predict``), positive or negative."""

    points: np.ndarray
    positive: bool


class ClickPipeline:
    """Runs a click-refinement bundle on one image at a time. Not thread-safe.

    Args:
        model: a click-refinement ``ivos.Model`` (checked by the caller).
        settings: resolved ``ClickSettings``.
        click_encoder: the click encoding (``ClickEncoder``); None = the runtime's Gaussian
            clicks, which the bundle's ``click_encoding`` must name.
    """

    def __init__(self, model: Model, settings: ClickSettings, click_encoder: ClickEncoder | None = None):
        bundle = model.bundle
        names = [s.name for s in bundle.inputs]
        if names != ["image", "mask", "clicks"]:
            raise InvalidInput(f"model inputs must be image, mask, clicks; the bundle has {names}")
        if model.working_size[0] != model.working_size[1]:
            raise InvalidInput(f"model working_size must be square, got {model.working_size}")
        enc = bundle.click_encoding or {}
        kind = enc.get("kind", "gaussian")
        if click_encoder is None and kind != "gaussian":
            raise InvalidInput(f"bundle {bundle.name} encodes clicks as {kind!r}, which the runtime does not render "
                               "(an ablation encoding): pass click_encoder= (e.g. ivos.evaluation.distmap.encoder)")
        self.model = model
        self.settings = settings
        self.size = model.working_size[0]
        self._sigma = float(enc.get("sigma", 5.0))
        self._encode = click_encoder or self._gaussian
        self._ctx = model.create_context()
        self._view = ClickView(self.size, Normaliser(bundle.mean, bundle.std))
        self._crf_cache = CrfCache()  # the CRF lattices of the current image's view region
        # The design guide's hot path on CUDA: the click kernel renders straight into the network's
        # device input buffer (no host buffer, no upload). Other encodings render on the host.
        self._device_clicks = (self._ctx.device_input("clicks")
                               if self._ctx.device == "cuda" and click_encoder is None else None)

    def close(self) -> None:
        """Frees the run context's buffers (device memory on CUDA); the pipeline is unusable after."""
        self._ctx.close()

    @property
    def image(self) -> np.ndarray | None:
        return self._view.image

    def set_image(self, image: np.ndarray) -> None:
        """Binds a checked, C-contiguous (H, W, 3) uint8 image (not copied)."""
        self._view.set_image(image)
        self._crf_cache.clear()

    def view_for(self, mask: np.ndarray | None, points: np.ndarray) -> Box:
        """The view a prediction with ``mask`` (H, W) bool or None and ``points`` (N, 2) takes."""
        h, w = self.image.shape[:2]
        s = self.settings
        return zoom_box(h, w, mask if s.zoom else None, points, min_side=s.min_zoom_side, expansion=s.zoom_expansion)

    def run(self, coords: np.ndarray, labels: np.ndarray, strokes: Sequence[Stroke] = (), *,
            mask: np.ndarray | None = None, carried: ClickResult | None = None, view: Box | None = None,
            crf: bool | None = None) -> ClickResult:
        """Predicts from checked inputs.

        Args:
            coords: (N, 2) float (x, y) original pixels inside the image.
            labels: (N,) int64 1/0.
            strokes: checked ``Stroke`` objects.
            mask: (H, W) bool current mask or None: the network's mask input, resized into
                the view (ignored when ``carried`` is given).
            carried: the previous result of the same object on this image: its mask chooses
                the view and its ``low_res_logits`` (> 0) are the network's mask input,
                resampled from its view into the new one.
            view: the view (checked); None = ``view_for(mask, all points)``.
            crf: override ``settings.crf.enabled``.
        """
        t0 = time.perf_counter()
        if carried is not None:
            mask = carried.mask.astype(bool)
        all_points = np.concatenate([coords] + [s.points for s in strokes]) if strokes else coords
        box = self.view_for(mask, all_points) if view is None else view
        carry = (carried.low_res_logits, carried.box) if carried is not None and carried.low_res_logits is not None \
            else None
        spent = [0.0, 0.0, 0.0, 0.0]  # prepare, render, infer, post (seconds)
        logits, prob = self._look(box, coords, labels, strokes, mask, carry, spent)
        refocus = self.settings.refocus_below
        h, w = prob.shape
        if view is None and refocus > 0 and self.settings.zoom and (box.width, box.height) == (w, h):
            # A small object seen through the whole image is a few working pixels wide: look
            # again through a zoom-in view around what the network found and the clicks.
            t = time.perf_counter()
            found = prob > 0.5
            small = np.count_nonzero(found) < refocus * found.size
            if small:
                side = max(self.settings.min_zoom_side, int(round(self.settings.refocus_min_side * max(h, w))))
                focus = focus_box(h, w, found, all_points, min_side=side, expansion=self.settings.zoom_expansion)
            spent[3] += time.perf_counter() - t
            if small and focus != box:
                box = focus
                logits, prob = self._look(box, coords, labels, strokes, None, (logits, full_view(h, w)), spent)
        hard_strokes = [] if self.settings.soft_strokes else [(s.points, s.positive) for s in strokes]
        t = time.perf_counter()
        self._clamp(prob, coords, labels, hard_strokes)
        t4 = time.perf_counter()
        spent[3] += t4 - t
        if self.settings.crf.enabled if crf is None else crf:
            min_area = self.settings.crf_min_area
            if min_area <= 0 or np.count_nonzero(prob > 0.5) >= min_area * prob.size:
                refine_with_crf(self.image, prob, box.clip(h, w), self.settings.crf, cache=self._crf_cache)
                self._clamp(prob, coords, labels, hard_strokes)
        t5 = time.perf_counter()
        timings = Timings(prepare_ms=spent[0] * 1e3, render_ms=spent[1] * 1e3, infer_ms=spent[2] * 1e3,
                          post_ms=spent[3] * 1e3, crf_ms=(t5 - t4) * 1e3, total_ms=(t5 - t0) * 1e3)
        return ClickResult((prob > 0.5).astype(np.uint8), prob, box, timings, self.model.backend, logits)

    def _look(self, box: Box, coords: np.ndarray, labels: np.ndarray, strokes: Sequence[Stroke],
              mask: np.ndarray | None, carry: tuple[np.ndarray, Box] | None, spent: list[float]
              ) -> tuple[np.ndarray, np.ndarray]:
        """One network look through view ``box``: the mask input is ``carry`` (low-resolution
        logits and their view) resampled into ``box``, else ``mask``; returns the view's
        logits and the probability map of the original image (not clamped). Adds the seconds
        of each stage to ``spent`` (prepare, render, infer, post)."""
        t0 = time.perf_counter()
        inputs = self._ctx.inputs
        self._view.load_image(box, inputs["image"][0])
        if carry is not None:
            logits = self._view.carry_logits(carry[0], carry[1], box)
            np.greater(logits, 0.0, out=inputs["mask"][0, 0], casting="unsafe")
        else:
            self._view.load_mask(box, mask, inputs["mask"][0, 0])
        t1 = time.perf_counter()
        clicks = np.concatenate([box.to_working(coords, self.size), labels[:, None].astype(np.float32)], axis=1)
        work_strokes = [(box.to_working(s.points, self.size), int(s.positive)) for s in strokes]
        self._render(clicks, work_strokes)
        t2 = time.perf_counter()
        logits = self._infer(clicks, work_strokes)
        t3 = time.perf_counter()
        prob = self._view.to_original(box, logits)
        t4 = time.perf_counter()
        for i, dt in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            spent[i] += dt
        return logits, prob

    @staticmethod
    def _clamp(prob: np.ndarray, coords: np.ndarray, labels: np.ndarray, strokes: list) -> None:
        clamp_clicks(prob, coords, labels)
        clamp_strokes(prob, strokes)

    def _gaussian(self, size: int, clicks: np.ndarray, strokes: list, out: np.ndarray) -> None:
        render_clicks(size, size, clicks, sigma=self._sigma, strokes=strokes, out=out[0])

    def _render(self, clicks: np.ndarray, strokes: list) -> None:
        """Encodes working-pixel clicks (N, 3) and strokes into the bound ``clicks`` input: on
        the device when the context is on CUDA (on its stream, before the next run)."""
        if self._device_clicks is None:
            self._encode(self.size, clicks, strokes, self._ctx.inputs["clicks"][0])
        else:
            render_clicks_cuda(self._device_clicks, self.size, self.size, clicks, sigma=self._sigma, strokes=strokes)

    def _infer(self, clicks: np.ndarray, strokes: list) -> np.ndarray:
        """(size, size) float32 logits of the bound inputs (a copy: the output buffer is
        reused); with ``flip``, the mean of the view's and its mirror image's logits (the
        inputs are mirrored back afterwards, so the cached image view stays valid)."""
        logits = self._ctx.run(fetch=("logits",))["logits"][0, 0].copy()
        if not self.settings.flip:
            return logits
        self._mirror_inputs(clicks, strokes, mirrored=True)
        try:
            logits += self._ctx.run(fetch=("logits",))["logits"][0, 0, :, ::-1]
        finally:
            self._mirror_inputs(clicks, strokes, mirrored=False)
        logits *= 0.5
        return logits

    def _mirror_inputs(self, clicks: np.ndarray, strokes: list, *, mirrored: bool) -> None:
        """Mirrors every host input left-right in place (width is the last axis); clicks that
        live on the device are rendered again, mirrored (x -> size - 1 - x) or not."""
        for buf in self._ctx.inputs.values():
            buf[...] = buf[..., ::-1].copy()
        if self._device_clicks is not None:
            if mirrored:
                clicks = clicks.copy()
                clicks[:, 0] = self.size - 1 - clicks[:, 0]
                strokes = [(np.stack([self.size - 1 - p[:, 0], p[:, 1]], axis=1), v) for p, v in strokes]
            self._render(clicks, strokes)
