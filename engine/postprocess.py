"""Post-processing of a probability map, for clicks and propagated frames alike.

Every function works on a float32 (H, W) foreground probability of the original image, in
place where it says so: the click constraint (``clamp_clicks``, ``clamp_strokes``), the dense
CRF on a region with a pixel budget (``refine_with_crf``), the motion gate of propagated
frames (``gate_to_prior``) and the confidence of a prediction (``confidence``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .ops.crf import CRF_DEFAULTS, dense_crf

CLAMP_RADIUS = 1.5
"""Radius (original pixels) of the disk around each click forced to the click's label: the
clicked pixel and its 4-neighbours. The paper clamps the clicked pixels; a tiny disk keeps
the constraint visible after the upsampling's interpolation."""


@dataclass(frozen=True)
class CrfSettings:
    """One dense-CRF configuration.

    Attributes:
        enabled: run it at all.
        params: every ``ivos.dense_crf`` keyword (``CRF_DEFAULTS`` overridden by a bundle's
            ``postprocess.crf_params`` and then by arguments).
        max_pixels: pixel budget; a larger region is refined at a lower resolution with the
            spatial scales (sxy) shrunk alike, then upsampled (the CRF costs ~linear time in
            pixels). None: no budget.
    """

    enabled: bool
    params: dict[str, Any]
    max_pixels: int | None

    @staticmethod
    def merged(enabled: bool, params: dict[str, Any] | None, max_pixels: int | None) -> "CrfSettings":
        """``params`` (checked keywords, possibly partial) over ``CRF_DEFAULTS``."""
        return CrfSettings(bool(enabled), {**CRF_DEFAULTS, **(params or {})}, max_pixels)


def refine_with_crf(image: np.ndarray, prob: np.ndarray, roi: tuple[int, int, int, int],
                    settings: CrfSettings) -> None:
    """Dense CRF on the ``roi`` (x0, y0, x1, y1; x1/y1 exclusive) of ``prob`` (H, W) float32
    with ``image`` (H, W, 3) uint8, in place; downscaled to ``settings.max_pixels`` when the
    region is larger."""
    x0, y0, x1, y1 = roi
    area = (x1 - x0) * (y1 - y0)
    if area <= 0:
        return
    params = dict(settings.params)
    if settings.max_pixels is None or area <= settings.max_pixels:
        if (x0, y0, x1, y1) == (0, 0, prob.shape[1], prob.shape[0]):
            prob[...] = dense_crf(image, prob, **params)
        else:
            prob[...] = dense_crf(image, prob, roi=roi, **params)
        return
    from PIL import Image

    f = (settings.max_pixels / area) ** 0.5
    small = (max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f)))
    small_image = np.asarray(Image.fromarray(image[y0:y1, x0:x1]).resize(small, Image.BILINEAR))
    region = Image.fromarray(np.ascontiguousarray(prob[y0:y1, x0:x1]), mode="F")
    small_prob = np.clip(np.asarray(region.resize(small, Image.BILINEAR)), 0.0, 1.0)
    params["sxy_gaussian"] *= f
    params["sxy_bilateral"] *= f
    refined = dense_crf(small_image, small_prob, **params)
    prob[y0:y1, x0:x1] = np.asarray(Image.fromarray(refined, mode="F").resize((x1 - x0, y1 - y0), Image.BILINEAR))


def clamp_clicks(prob: np.ndarray, coords: np.ndarray, labels: np.ndarray, radius: float = CLAMP_RADIUS) -> None:
    """Forces the disk of ``radius`` px around each click to its label, in place.
    ``coords`` (N, 2) (x, y) original pixels; ``labels`` (N,) 1/0."""
    h, w = prob.shape
    for (x, y), label in zip(coords, labels):
        x0, x1 = max(0, int(np.ceil(x - radius))), min(w, int(np.floor(x + radius)) + 1)
        y0, y1 = max(0, int(np.ceil(y - radius))), min(h, int(np.floor(y + radius)) + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        disk = (xx - x) ** 2 + (yy - y) ** 2 <= radius * radius
        prob[y0:y1, x0:x1][disk] = float(label)


def clamp_strokes(prob: np.ndarray, strokes: Sequence[tuple[np.ndarray, bool]], radius: float = CLAMP_RADIUS) -> None:
    """Forces a tube of ``radius`` px along each (points (M, 2) (x, y), positive) polyline to
    its label, in place."""
    from .ops.clicks import render_clicks

    h, w = prob.shape
    for points, positive in strokes:
        tube = render_clicks(h, w, None, sigma=radius / 2, strokes=[(points, 1)]) > 0
        prob[tube] = 1.0 if positive else 0.0


def gate_to_prior(prob: np.ndarray, prior: np.ndarray, margin: float) -> None:
    """Zeroes ``prob`` (H, W) outside the (H, W) {0,1} ``prior`` mask's box grown by
    ``margin`` x its size + 10% of the frame size, in place: an object moves a bounded
    distance between frames, while look-alikes far away are OSVOS's typical false positives."""
    from .export_masks import mask_bbox

    x, y, bw, bh = mask_bbox(prior)
    h, w = prob.shape
    mx, my = int(margin * bw + 0.1 * w), int(margin * bh + 0.1 * h)
    x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(w, x + bw + mx), min(h, y + bh + my)
    prob[:y0] = 0.0
    prob[y1:] = 0.0
    prob[:, :x0] = 0.0
    prob[:, x1:] = 0.0


def confidence(prob: np.ndarray) -> float:
    """1 minus the share of uncertain pixels (0.2 < p < 0.8) among object + uncertain pixels
    of a (H, W) probability map, in [0, 1]."""
    uncertain = int(np.count_nonzero((prob > 0.2) & (prob < 0.8)))
    return 1.0 - uncertain / max(int(np.count_nonzero(prob > 0.5)) + uncertain, 1)

