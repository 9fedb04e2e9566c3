"""``ImagePredictor``: clicks in, mask out, on one image, through an exported network.

The predictor checks its arguments once, here at the public boundary, keeps the click
history (``ivos.image.click_history``) and hands checked inputs to the click path
(``ivos.image.click_pipeline``: views, network, post-processing). Between clicks the working state
is the previous result's low-resolution logits, never a full-size mask sent back down.

Not thread-safe: use one predictor per thread (they can share one ``Model``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._validate import binary_mask, click_labels, describe, flag, image_coordinate, image_points, rgb_image
from ..errors import InvalidInput
from ..postprocess import CLAMP_RADIUS
from ..runtime.model import Model
from ..settings import DEFAULT_IMAGE_LIMIT, MAX_IMAGE_PIXELS, ClickSettings
from .click_history import ClickHistory, Step
from .click_pipeline import ClickEncoder, ClickPipeline, ClickResult, Stroke, Timings
from .geometry import Box

__all__ = ["CLAMP_RADIUS", "MAX_IMAGE_PIXELS", "ClickResult", "ImagePredictor", "Stroke", "Timings"]


class ImagePredictor:
    """Interactive segmentation of one image at a time.

    Coordinates: points are (x, y) in original pixels, x = column, y = row, in continuous
    pixel coordinates: pixel ``image[i, j]`` spans ``j <= x < j + 1``, ``i <= y < i + 1``.
    Integer coordinates name pixels (``add_click(j, i, ...)`` clicks ``image[i, j]``) and
    mouse positions scaled to the image can be passed as they are: a point is inside the
    image when ``0 <= x < W`` and ``0 <= y < H`` (x = W - 0.5 is in the last column; x = W,
    negative, NaN and infinite coordinates raise ``InvalidInput``). The network and the click
    rendering place a point at its coordinates with pixel centres at integers (the
    convention of ``ivos.image.geometry``), so a fractional point is seen within one pixel of
    where a GUI shows it; the pixel ``image[floor(y), floor(x)]`` it lies in is always
    clamped to its label (``CLAMP_RADIUS``).

    Args:
        model: from ``ivos.load``; may be shared by several predictors/threads.
        crf: dense-CRF post-processing on the view's region. None = the bundle's default.
        crf_params: keyword arguments for ``ivos.dense_crf`` (defaults: the bundle's).
        soft_strokes: when True, strokes guide the network but their pixels are not clamped.
        zoom: zoom in around the mask after the first click (RITM/FocalClick style).
        min_zoom_side: smallest zoom-in view side in original pixels (default
            ``ivos.image.geometry.MIN_ZOOM_SIDE``).
        zoom_expansion: zoom-in view side / side of the mask-and-clicks box (default
            ``ivos.image.geometry.ZOOM_EXPANSION``).
        flip: test-time augmentation: also run the network on the mirrored view and average
            the two logit maps (one more network run per click). None = the bundle's default
            (``postprocess.flip``, off when absent).
        max_image_pixels: largest image (height x width) ``set_image`` accepts; None = no
            limit. Default: ``ivos.settings.MAX_IMAGE_PIXELS`` (50 megapixels; see there for
            the memory and time a click costs per megapixel).
        click_encoder: the click encoding for bundles that do not use the runtime's Gaussian
            clicks (``ivos.image.click_pipeline.ClickEncoder``; the Table-1 ablations).
        crf_min_area: the CRF runs only on masks covering at least this share of the image
            (0: always). None = the bundle's default (``postprocess.crf_min_area``, else 0).
        refocus_below: a whole-image view whose mask covers less than this share of the
            image is followed by a second look through a zoom-in view around it (0: off).
            None = the bundle's default (``postprocess.refocus_below``, else 0).
        refocus_min_side: that zoom-in view's smallest side as a share of the image's
            longer side. None = the bundle's default (``postprocess.refocus_min_side``, else
            ``ivos.settings.REFOCUS_MIN_SIDE``).

    The resolved settings are ``predictor.settings`` (``ivos.settings.ClickSettings``).

    Raises:
        InvalidInput: ``model`` is not a click-refinement ``ivos.Model``, or a flag or
            parameter has the wrong type or range (the message names it).
    """

    def __init__(self, model: Model, *, crf: bool | None = None, crf_params: dict[str, Any] | None = None,
                 soft_strokes: bool = False, zoom: bool = True, min_zoom_side: int | None = None,
                 zoom_expansion: float | None = None, flip: bool | None = None,
                 max_image_pixels: int | None = DEFAULT_IMAGE_LIMIT, click_encoder: ClickEncoder | None = None,
                 crf_min_area: float | None = None, refocus_below: float | None = None,
                 refocus_min_side: float | None = None):
        if not isinstance(model, Model):
            raise InvalidInput(f"model must be an ivos.Model from ivos.load(bundle), got {describe(model)}")
        if model.bundle.task != "click-refinement":
            raise InvalidInput(f"model must be a click-refinement bundle, got task {model.bundle.task!r}")
        self.model = model
        self.settings = ClickSettings.resolve(
            model.bundle, crf=crf, crf_params=crf_params, flip=flip, soft_strokes=soft_strokes, zoom=zoom,
            min_zoom_side=min_zoom_side, zoom_expansion=zoom_expansion, max_image_pixels=max_image_pixels,
            threads=model.threads, crf_min_area=crf_min_area, refocus_below=refocus_below,
            refocus_min_side=refocus_min_side)
        self._pipeline = ClickPipeline(model, self.settings, click_encoder)
        self._history = ClickHistory()

    def close(self) -> None:
        """Frees the predictor's run context (device memory on a GPU); the model stays loaded.
        The predictor cannot predict afterwards."""
        self._pipeline.close()

    def __enter__(self) -> "ImagePredictor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- image -------------------------------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        """Sets the (H, W, 3) uint8 RGB image and forgets all clicks.

        Raises:
            InvalidInput: not an (H, W, 3) uint8 array, empty, or more than
                ``max_image_pixels`` pixels (checked before anything is copied).
        """
        checked = rgb_image("image", image, max_pixels=self.settings.max_image_pixels,
                            limit_hint="pass ImagePredictor(model, max_image_pixels=N) to raise it "
                                       "(None = no limit; see ivos.settings.MAX_IMAGE_PIXELS), or downscale the image")
        self._pipeline.set_image(checked)
        self._history.clear()

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the current image."""
        return self._require_image().shape[:2]

    def _require_image(self) -> np.ndarray:
        image = self._pipeline.image
        if image is None:
            raise InvalidInput("no image: call set_image(image) first")
        return image

    # ---- stateful interaction ----------------------------------------------------------
    def add_click(self, x: float, y: float, positive: bool) -> ClickResult:
        """Adds a click at (x, y) original pixels and predicts with every click so far and the
        previous result as input.

        Args:
            x: column, 0 <= x < W (continuous pixel coordinates, see the class docstring).
            y: row, 0 <= y < H.
            positive: True (or 1): on the object; False (or 0): background. Any other value
                (None, "no", 0.5, 2) raises ``InvalidInput``.
        """
        h, w = self._require_image().shape[:2]
        click = (image_coordinate("x", x, w, "column"), image_coordinate("y", y, h, "row"), flag("positive", positive))
        return self._run_step(self._history.extend(click=click))

    def add_stroke(self, points: Any, positive: bool) -> ClickResult:
        """Adds a stroke (polyline of (x, y) original pixels, shape (M, 2), every vertex
        inside the image as for clicks) and predicts. ``positive``: True/False (or 1/0)."""
        h, w = self._require_image().shape[:2]
        stroke = Stroke(image_points("points", points, h, w), flag("positive", positive))
        return self._run_step(self._history.extend(stroke=stroke))

    def undo(self) -> ClickResult | None:
        """Removes the last click/stroke; returns the result before it (None when empty)."""
        return self._history.undo()

    def reset(self) -> None:
        """Forgets all clicks and strokes (keeps the image)."""
        self._history.clear()

    @property
    def result(self) -> ClickResult | None:
        """The latest result of add_click/add_stroke (None before any)."""
        return self._history.result

    def _run_step(self, step: Step) -> ClickResult:
        coords = np.array([(x, y) for x, y, _ in step.clicks], np.float32).reshape(-1, 2)
        labels = np.array([int(p) for _, _, p in step.clicks], np.int64)
        step.result = self._pipeline.run(coords, labels, step.strokes, carried=step.result)
        self._history.push(step)  # only now: a failed prediction never joins the history
        return step.result

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
        h, w = self._require_image().shape[:2]
        coords = image_points("point_coords", point_coords, h, w, allow_empty=True)
        labels = click_labels("point_labels", point_labels, len(coords))
        mask = None if mask_input is None else binary_mask("mask_input", mask_input, h, w)
        checked_strokes = check_strokes(strokes, h, w)
        use_crf = None if crf is None else flag("crf", crf)
        if len(coords) == 0 and not checked_strokes and mask is None:
            raise InvalidInput("point_coords is empty and there are no strokes or mask_input: nothing to predict from")
        box = None if view is None else check_view(view, h, w)
        return self._pipeline.run(coords, labels, checked_strokes, mask=mask, view=box, crf=use_crf)


def check_strokes(strokes: Any, height: int, width: int) -> list[Stroke]:
    """A list or tuple of ``Stroke`` with every vertex inside the image, checked."""
    if isinstance(strokes, (Stroke, str, bytes, np.ndarray)) or not isinstance(strokes, (list, tuple)):
        raise InvalidInput(f"strokes must be a list or tuple of ivos.Stroke, got {describe(strokes)}")
    out = []
    for i, stroke in enumerate(strokes):
        if not isinstance(stroke, Stroke):
            raise InvalidInput(f"strokes[{i}] must be an ivos.Stroke, got {describe(stroke)}")
        out.append(Stroke(image_points(f"strokes[{i}].points", stroke.points, height, width),
                          flag(f"strokes[{i}].positive", stroke.positive)))
    return out


def check_view(view: Any, height: int, width: int) -> Box:
    """A ``Box`` of integers overlapping the image, with sides at most 4x the image's."""
    if isinstance(view, Box) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                     for v in (view.x0, view.y0, view.width, view.height)):
        x0, y0, x1, y1 = view.clip(height, width)
        # A view is resized to the working size: one far larger than the image would only
        # allocate a huge padded canvas.
        if x0 < x1 and y0 < y1 and max(view.width, view.height) <= 4 * max(height, width):
            return view
    raise InvalidInput(f"view must be a Box of integers overlapping the {width}x{height} image, with sides at most "
                       f"{4 * max(height, width)}, got {view!r}")
