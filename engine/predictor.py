"""``ImagePredictor``: clicks in, mask out, on one image, through an exported network.

The per-click flow (DESIGN.md section 3): choose the view (the full image first, then a
zoom-in square around the current mask and the clicks), crop + resize + normalise the image
into the bound input buffer (cached while the view stays), render the clicks straight into
the bound click buffer, copy the current mask in, run the network, upsample the logits of
the view back to original pixels, clamp the clicked pixels (hard constraint), optionally
refine with the dense CRF on the view's region, threshold.

Not thread-safe: use one predictor per thread (they can share one ``Model``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ._validate import click_labels, crf_params as check_crf_params, describe, flag, image_coordinate, image_points, \
    positive_float, positive_int, rgb_image
from .errors import InvalidInput
from .geometry import MIN_ZOOM_SIDE, ZOOM_EXPANSION, Box, zoom_box
from .model import Model
from .ops.clicks import render_clicks
from .ops.crf import CRF_DEFAULTS, dense_crf
from .ops.distmap import render_distance_maps

log = logging.getLogger("ivos")

CLAMP_RADIUS = 1.5
"""Radius (original pixels) of the disk around each click forced to the click's label: the
clicked pixel and its 4-neighbours. The paper clamps the clicked pixels; a tiny disk keeps
the constraint visible after the upsampling's interpolation."""

CRF_MAX_PIXELS = 160_000
"""Pixel budget of the CRF per click. A larger region (the full view of a big frame) is
refined at a lower resolution with the spatial scales (sxy) shrunk alike, then upsampled:
the CRF costs ~linear time in pixels, and a click must stay interactive at 1080p."""

MAX_IMAGE_PIXELS = 50_000_000
"""Largest image (height x width) ``set_image`` accepts unless the predictor is created with
``max_image_pixels=`` (None = no limit). 50 megapixels admits every common camera and video
frame (8K UHD is 33 MP, a 48 MP phone photo 8064x6048 = 48.8 MP) and bounds a click's cost:
measured with ``ivos-cpu`` (int8, CRF on) on a 2-core VM, a click's peak memory grows by
about 19 MiB per megapixel (0.9 GiB at 48 MP) and takes 2-3.5 s at 48 MP, while a 20000 x
20000 image (400 MP) took 129 s and 9 GB per click. Besides, every click kept for ``undo``
holds its mask and probabilities: 5 bytes per pixel (240 MB per click at 48 MP)."""

PAD_RGB = (124, 116, 104)
"""Padding colour for views that extend past the image: the ImageNet mean, i.e. 0 after
normalisation (the training crops pad the same way)."""


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
    """One prediction. ``mask`` uint8 (H, W) in {0, 1}; ``probabilities`` float32 (H, W)
    foreground probability (after CRF when on); ``box`` the view the network saw."""

    mask: np.ndarray
    probabilities: np.ndarray
    box: Box
    timings: Timings
    backend: str


@dataclass(frozen=True)
class Stroke:
    """A polyline (M, 2) float32 of (x, y) original pixels (the click convention of
    ``ImagePredictor.predict``), positive or negative."""

    points: np.ndarray
    positive: bool


@dataclass
class _Interaction:
    clicks: list[tuple[float, float, bool]] = field(default_factory=list)
    strokes: list[Stroke] = field(default_factory=list)
    result: ClickResult | None = None


class _Default:
    def __repr__(self) -> str:
        return "MAX_IMAGE_PIXELS"


_MODULE_LIMIT: Any = _Default()


class ImagePredictor:
    """Interactive segmentation of one image at a time.

    Coordinates: points are (x, y) in original pixels, x = column, y = row, in continuous
    pixel coordinates: pixel ``image[i, j]`` spans ``j <= x < j + 1``, ``i <= y < i + 1``.
    Integer coordinates name pixels (``add_click(j, i, ...)`` clicks ``image[i, j]``) and
    mouse positions scaled to the image can be passed as they are: a point is inside the
    image when ``0 <= x < W`` and ``0 <= y < H`` (x = W - 0.5 is in the last column; x = W,
    negative, NaN and infinite coordinates raise ``InvalidInput``). The network and the click
    rendering place a point at its coordinates with pixel centres at integers (the
    convention of ``ivos.geometry``), so a fractional point is seen within one pixel of
    where a GUI shows it; the pixel ``image[floor(y), floor(x)]`` it lies in is always
    clamped to its label (``CLAMP_RADIUS``).

    Args:
        model: from ``ivos.load``; may be shared by several predictors/threads.
        crf: dense-CRF post-processing on the view's region. None = the bundle's default.
        crf_params: keyword arguments for ``ivos.dense_crf`` (defaults: the bundle's).
        soft_strokes: when True, strokes guide the network but their pixels are not clamped.
        zoom: zoom in around the mask after the first click (RITM/FocalClick style).
        min_zoom_side: smallest zoom-in view side in original pixels (default
            ``ivos.geometry.MIN_ZOOM_SIDE``).
        zoom_expansion: zoom-in view side / side of the mask-and-clicks box (default
            ``ivos.geometry.ZOOM_EXPANSION``).
        flip: test-time augmentation: also run the network on the mirrored view and average
            the two logit maps (one more network run per click). None = the bundle's default
            (``postprocess.flip``, off when absent).
        max_image_pixels: largest image (height x width) ``set_image`` accepts; None = no
            limit. Default: ``ivos.predictor.MAX_IMAGE_PIXELS`` (50 megapixels; see there
            for the memory and time a click costs per megapixel).

    Raises:
        InvalidInput: ``model`` is not a click-refinement ``ivos.Model``, or a flag or
            parameter has the wrong type or range (the message names it).
    """

    def __init__(self, model: Model, *, crf: bool | None = None, crf_params: dict[str, Any] | None = None,
                 soft_strokes: bool = False, zoom: bool = True, min_zoom_side: int | None = None,
                 zoom_expansion: float | None = None, flip: bool | None = None,
                 max_image_pixels: int | None = _MODULE_LIMIT):
        if not isinstance(model, Model):
            raise InvalidInput(f"model must be an ivos.Model from ivos.load(bundle), got {describe(model)}")
        if model.bundle.task != "click-refinement":
            raise InvalidInput(f"model must be a click-refinement bundle, got task {model.bundle.task!r}")
        self.model = model
        post = model.bundle.postprocess
        self.crf = bool(post.get("crf", False)) if crf is None else flag("crf", crf)
        self.crf_params = check_crf_params("crf_params", dict(post.get("crf_params", {})) if crf_params is None
                                           else crf_params)
        self.flip = bool(post.get("flip", False)) if flip is None else flag("flip", flip)
        self.soft_strokes = flag("soft_strokes", soft_strokes)
        self.zoom = flag("zoom", zoom)
        self.min_zoom_side = MIN_ZOOM_SIDE if min_zoom_side is None else positive_int("min_zoom_side", min_zoom_side)
        self.zoom_expansion = (ZOOM_EXPANSION if zoom_expansion is None
                               else positive_float("zoom_expansion", zoom_expansion))
        if not 1.0 <= self.zoom_expansion <= 10.0:
            raise InvalidInput(f"zoom_expansion must be in [1, 10], got {zoom_expansion!r}")
        if isinstance(max_image_pixels, _Default):
            max_image_pixels = MAX_IMAGE_PIXELS
        self.max_image_pixels = (None if max_image_pixels is None
                                 else positive_int("max_image_pixels", max_image_pixels))
        self._ctx = model.create_context()
        names = [s.name for s in model.bundle.inputs]
        if names != ["image", "mask", "clicks"]:
            raise InvalidInput(f"model inputs must be image, mask, clicks; the bundle has {names}")
        self._size = model.working_size[0]
        if model.working_size[0] != model.working_size[1]:
            raise InvalidInput(f"model working_size must be square, got {model.working_size}")
        enc = model.bundle.click_encoding or {}
        self._encoding, self._sigma = enc.get("kind", "gaussian"), float(enc.get("sigma", 5.0))
        self._mean = np.array(model.bundle.mean, np.float32).reshape(3, 1, 1) * 255.0
        self._inv_std = 1.0 / (np.array(model.bundle.std, np.float32).reshape(3, 1, 1) * 255.0)
        self._image: np.ndarray | None = None
        self._view: Box | None = None
        self._history: list[_Interaction] = []

    # ---- image -------------------------------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        """Sets the (H, W, 3) uint8 RGB image and forgets all clicks.

        Raises:
            InvalidInput: not an (H, W, 3) uint8 array, empty, or more than
                ``max_image_pixels`` pixels (checked before anything is copied).
        """
        self._image = rgb_image("image", image, max_pixels=self.max_image_pixels,
                                limit_hint="pass ImagePredictor(model, max_image_pixels=N) to raise it "
                                           "(None = no limit; see ivos.predictor.MAX_IMAGE_PIXELS), "
                                           "or downscale the image")
        self._view = None
        self._history = []

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the current image."""
        self._require_image()
        return self._image.shape[:2]

    def _require_image(self) -> None:
        if self._image is None:
            raise InvalidInput("no image: call set_image(image) first")

    # ---- stateful interaction ----------------------------------------------------------
    def add_click(self, x: float, y: float, positive: bool) -> ClickResult:
        """Adds a click at (x, y) original pixels and predicts with every click so far and the
        current mask as input.

        Args:
            x: column, 0 <= x < W (continuous pixel coordinates, see the class docstring).
            y: row, 0 <= y < H.
            positive: True (or 1): on the object; False (or 0): background. Any other value
                (None, "no", 0.5, 2) raises ``InvalidInput``.
        """
        self._require_image()
        h, w = self._image.shape[:2]
        click = (image_coordinate("x", x, w, "column"), image_coordinate("y", y, h, "row"), flag("positive", positive))
        state = self._next_interaction()
        state.clicks.append(click)
        return self._predict_interaction(state)

    def add_stroke(self, points: Any, positive: bool) -> ClickResult:
        """Adds a stroke (polyline of (x, y) original pixels, shape (M, 2), every vertex
        inside the image as for clicks) and predicts. ``positive``: True/False (or 1/0)."""
        self._require_image()
        pts = self._check_points("points", points)
        state = self._next_interaction()
        state.strokes.append(Stroke(pts, flag("positive", positive)))
        return self._predict_interaction(state)

    def undo(self) -> ClickResult | None:
        """Removes the last click/stroke; returns the result before it (None when empty)."""
        if self._history:
            self._history.pop()
        return self._history[-1].result if self._history else None

    def reset(self) -> None:
        """Forgets all clicks and strokes (keeps the image)."""
        self._history = []

    @property
    def result(self) -> ClickResult | None:
        """The latest result of add_click/add_stroke (None before any)."""
        return self._history[-1].result if self._history else None

    def _next_interaction(self) -> _Interaction:
        prev = self._history[-1] if self._history else _Interaction()
        return _Interaction(list(prev.clicks), list(prev.strokes), prev.result)

    def _predict_interaction(self, state: _Interaction) -> ClickResult:
        prev_mask = state.result.mask if state.result is not None else None
        coords = np.array([(x, y) for x, y, _ in state.clicks], np.float64).reshape(-1, 2)
        labels = np.array([int(p) for _, _, p in state.clicks], np.int64)
        try:
            state.result = self.predict(coords, labels, mask_input=prev_mask, strokes=state.strokes)
        except InvalidInput:
            raise  # the failed click never joins the history
        self._history.append(state)
        return state.result

    # ---- stateless prediction ----------------------------------------------------------
    def predict(self, point_coords: Any, point_labels: Any, mask_input: np.ndarray | None = None, *,
                strokes: Sequence[Stroke] = (), crf: bool | None = None, view: Box | None = None) -> ClickResult:
        """Predicts the mask for the given clicks (does not touch the click history).

        Args:
            point_coords: (N, 2) (x, y) in original pixels (x = column), inside the image:
                0 <= x < W, 0 <= y < H (continuous pixel coordinates, see the class
                docstring). Integer or float dtype.
            point_labels: (N,) integers 1 positive / 0 negative, or booleans (float labels
                are refused: 0.7 is neither).
            mask_input: optional uint8/bool (H, W) current mask in {0, 1} (e.g. a propagated
                video mask to correct); None = no mask yet.
            strokes: optional sequence of ``Stroke``.
            crf: override the predictor's CRF setting for this call.
            view: the box (original pixels) the network sees; None = the full view without a
                mask, else the zoom-in box around the mask and all points. Probabilities
                outside the view are 0.

        Raises:
            InvalidInput: no image set, or an argument of the wrong type, shape, dtype or
                range (the message names it).
        """
        t0 = time.perf_counter()
        self._require_image()
        h, w = self._image.shape[:2]
        coords = self._check_points("point_coords", point_coords, allow_empty=True)
        labels = self._check_labels(point_labels, len(coords))
        mask = self._check_mask(mask_input, h, w)
        strokes = self._check_strokes(strokes)
        use_crf = self.crf if crf is None else flag("crf", crf)
        if len(coords) == 0 and not strokes and mask is None:
            raise InvalidInput("point_coords is empty and there are no strokes or mask_input: nothing to predict from")
        all_points = np.concatenate([coords] + [s.points for s in strokes]) if strokes else coords
        if view is None:
            box = zoom_box(h, w, mask if self.zoom else None, all_points, min_side=self.min_zoom_side,
                           expansion=self.zoom_expansion)
        else:
            box = self._check_view(view, h, w)

        self._prepare_image(box)
        self._prepare_mask(box, mask)
        t1 = time.perf_counter()
        self._render(box, coords, labels, strokes)
        t2 = time.perf_counter()
        logits = self._infer()
        t3 = time.perf_counter()
        prob = self._upsample(box, logits[0, 0], h, w)
        self._clamp(prob, coords, labels, strokes)
        t4 = time.perf_counter()
        if use_crf:
            self._crf(prob, box.clip(h, w))
            self._clamp(prob, coords, labels, strokes)
        t5 = time.perf_counter()
        timings = Timings(prepare_ms=(t1 - t0) * 1e3, render_ms=(t2 - t1) * 1e3, infer_ms=(t3 - t2) * 1e3,
                          post_ms=(t4 - t3) * 1e3, crf_ms=(t5 - t4) * 1e3, total_ms=(t5 - t0) * 1e3)
        return ClickResult((prob > 0.5).astype(np.uint8), prob, box, timings, self.model.backend)

    # ---- validation --------------------------------------------------------------------
    def _check_points(self, name: str, points: Any, *, allow_empty: bool = False) -> np.ndarray:
        self._require_image()
        h, w = self._image.shape[:2]
        return image_points(name, points, h, w, allow_empty=allow_empty)

    def _check_strokes(self, strokes: Any) -> list[Stroke]:
        if isinstance(strokes, (Stroke, str, bytes, np.ndarray)) or not isinstance(strokes, (list, tuple)):
            raise InvalidInput(f"strokes must be a list or tuple of ivos.Stroke, got {describe(strokes)}")
        out = []
        for i, stroke in enumerate(strokes):
            if not isinstance(stroke, Stroke):
                raise InvalidInput(f"strokes[{i}] must be an ivos.Stroke, got {describe(stroke)}")
            out.append(Stroke(self._check_points(f"strokes[{i}].points", stroke.points),
                              flag(f"strokes[{i}].positive", stroke.positive)))
        return out

    @staticmethod
    def _check_view(view: Any, h: int, w: int) -> Box:
        if isinstance(view, Box) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                         for v in (view.x0, view.y0, view.width, view.height)):
            x0, y0, x1, y1 = view.clip(h, w)
            # A view is resized to the working size: one far larger than the image would only
            # allocate a huge padded canvas.
            if x0 < x1 and y0 < y1 and max(view.width, view.height) <= 4 * max(h, w):
                return view
        raise InvalidInput(f"view must be a Box of integers overlapping the {w}x{h} image, with sides at most "
                           f"{4 * max(h, w)}, got {view!r}")

    @staticmethod
    def _check_labels(labels: Any, n: int) -> np.ndarray:
        return click_labels("point_labels", labels, n)

    @staticmethod
    def _check_mask(mask: Any, h: int, w: int) -> np.ndarray | None:
        if mask is None:
            return None
        if not isinstance(mask, np.ndarray) or mask.shape != (h, w) or mask.dtype not in (np.uint8, np.bool_):
            raise InvalidInput(f"mask_input must be a uint8 or bool array of shape ({h}, {w}), got {describe(mask)}")
        if mask.dtype == np.uint8 and mask.max(initial=0) > 1:
            raise InvalidInput("mask_input must hold 0/1 values (uint8), got values up to "
                               f"{int(mask.max())}; pass mask > 0 for a 0/255 mask")
        return mask.astype(bool, copy=False)

    # ---- stages ------------------------------------------------------------------------
    def _crop(self, array: np.ndarray, box: Box, fill) -> np.ndarray:
        """The box's part of ``array`` (H, W[, C]), padded with ``fill`` outside the image."""
        h, w = array.shape[:2]
        x0, y0, x1, y1 = box.clip(h, w)
        if (x0, y0, x1 - x0, y1 - y0) == (box.x0, box.y0, box.width, box.height):
            return array[y0:y1, x0:x1]
        canvas = np.empty((box.height, box.width) + array.shape[2:], array.dtype)
        canvas[...] = fill
        canvas[y0 - box.y0:y1 - box.y0, x0 - box.x0:x1 - box.x0] = array[y0:y1, x0:x1]
        return canvas

    def _prepare_image(self, box: Box) -> None:
        """Crop, resize and normalise the view into the bound image buffer (cached)."""
        if box == self._view:
            return
        from PIL import Image

        crop = self._crop(self._image, box, PAD_RGB)
        resized = np.asarray(Image.fromarray(crop).resize((self._size, self._size), Image.BILINEAR))
        buf = self._ctx.inputs["image"][0]
        np.subtract(resized.transpose(2, 0, 1), self._mean, out=buf, dtype=np.float32)
        buf *= self._inv_std
        self._view = box

    def _prepare_mask(self, box: Box, mask: np.ndarray | None) -> None:
        buf = self._ctx.inputs["mask"][0, 0]
        if mask is None:
            buf[...] = 0.0
            return
        from PIL import Image

        crop = self._crop(mask.view(np.uint8) * np.uint8(255), box, 0)
        resized = np.asarray(Image.fromarray(crop).resize((self._size, self._size), Image.BILINEAR))
        np.greater(resized, 127, out=buf, casting="unsafe")

    def _render(self, box: Box, coords: np.ndarray, labels: np.ndarray, strokes: Sequence[Stroke]) -> None:
        size = self._size
        clicks = np.concatenate([box.to_working(coords, size), labels[:, None].astype(np.float32)], axis=1)
        work_strokes = [(box.to_working(s.points, size), int(s.positive)) for s in strokes]
        if self._encoding == "distmap":
            render_distance_maps(size, size, clicks, strokes=work_strokes, out=self._ctx.inputs["clicks"][0])
        else:
            render_clicks(size, size, clicks, sigma=self._sigma, strokes=work_strokes,
                          out=self._ctx.inputs["clicks"][0, 0])

    def _infer(self) -> np.ndarray:
        """(1, 1, size, size) float32 logits of the bound inputs; with ``flip``, the mean of
        the view's and its mirror image's logits (the inputs are mirrored back afterwards, so
        the cached image view stays valid)."""
        logits = self._ctx.run()["logits"]
        if not self.flip:
            return logits
        logits = logits.copy()  # the next run overwrites the bound output buffer
        self._mirror_inputs()
        try:
            logits += self._ctx.run()["logits"][..., ::-1]
        finally:
            self._mirror_inputs()
        logits *= 0.5
        return logits

    def _mirror_inputs(self) -> None:
        """Mirrors every bound input left-right in place (width is the last axis)."""
        for buf in self._ctx.inputs.values():
            buf[...] = buf[..., ::-1].copy()

    def _upsample(self, box: Box, logits: np.ndarray, h: int, w: int) -> np.ndarray:
        """Foreground probability (H, W) float32: the view's logits resized back to original
        pixels inside the image, 0 outside the view."""
        from PIL import Image

        x0, y0, x1, y1 = box.clip(h, w)
        sx, sy = box.scale(self._size)
        src = ((x0 - box.x0) * sx, (y0 - box.y0) * sy, (x1 - box.x0) * sx, (y1 - box.y0) * sy)
        region = np.asarray(Image.fromarray(logits, mode="F").resize((x1 - x0, y1 - y0), Image.BILINEAR, box=src))
        prob = np.zeros((h, w), np.float32)
        out = prob[y0:y1, x0:x1]
        np.negative(region, out=out)
        with np.errstate(over="ignore"):  # logits below -88 overflow exp to inf: probability 0, as it should
            np.exp(out, out=out)
        out += 1.0
        np.reciprocal(out, out=out)
        return prob

    def _crf(self, prob: np.ndarray, roi: tuple[int, int, int, int]) -> None:
        """Dense CRF on ``roi`` of ``prob`` (H, W) float32, in place; downscaled to
        CRF_MAX_PIXELS when the region is larger."""
        x0, y0, x1, y1 = roi
        params = {**CRF_DEFAULTS, **self.crf_params}
        area = (x1 - x0) * (y1 - y0)
        if area <= CRF_MAX_PIXELS:
            prob[...] = dense_crf(self._image, prob, roi=roi, **params)
            return
        from PIL import Image

        f = (CRF_MAX_PIXELS / area) ** 0.5
        small = (max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f)))
        image = np.asarray(Image.fromarray(self._image[y0:y1, x0:x1]).resize(small, Image.BILINEAR))
        region = Image.fromarray(np.ascontiguousarray(prob[y0:y1, x0:x1]), mode="F")
        small_prob = np.clip(np.asarray(region.resize(small, Image.BILINEAR)), 0.0, 1.0)
        params["sxy_gaussian"] *= f
        params["sxy_bilateral"] *= f
        refined = dense_crf(image, small_prob, **params)
        prob[y0:y1, x0:x1] = np.asarray(Image.fromarray(refined, mode="F").resize((x1 - x0, y1 - y0), Image.BILINEAR))

    def _clamp(self, prob: np.ndarray, coords: np.ndarray, labels: np.ndarray, strokes: Sequence[Stroke]) -> None:
        """Forces the clicked pixels (and hard strokes) to their labels, in place."""
        r = CLAMP_RADIUS
        h, w = prob.shape
        for (x, y), label in zip(coords, labels):
            x0, x1 = max(0, int(np.ceil(x - r))), min(w, int(np.floor(x + r)) + 1)
            y0, y1 = max(0, int(np.ceil(y - r))), min(h, int(np.floor(y + r)) + 1)
            yy, xx = np.ogrid[y0:y1, x0:x1]
            disk = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
            prob[y0:y1, x0:x1][disk] = float(label)
        if self.soft_strokes:
            return
        for stroke in strokes:
            tube = render_clicks(h, w, None, sigma=r / 2, strokes=[(stroke.points, 1)]) > 0
            prob[tube] = 1.0 if stroke.positive else 0.0
