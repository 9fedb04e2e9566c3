"""Post-processing of a probability map, for clicks and propagated frames alike.

Every function works on a float32 (H, W) foreground probability of the original image, in
place where it says so: the click constraint (``clamp_clicks``, ``clamp_strokes``), the dense
CRF on a region with a pixel budget (``refine_with_crf``; ``object_region`` picks a propagated
frame's region), the motion gate of propagated frames (``gate_box``, ``gate_to_prior``) and the confidence
of a prediction (``confidence``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .ops.crf import DenseCRF, dense_crf
from .settings import FRAME_CRF_REACH, CrfSettings

CLAMP_RADIUS = 1.5
"""Radius (original pixels) of the disk around each click forced to the click's label: the
clicked pixel and its 4-neighbours. The paper clamps the clicked pixels; a tiny disk keeps
the constraint visible after the upsampling's interpolation."""


CRF_REGION_MARGIN = 0.03
"""``CrfCache`` grows the region it builds the CRF for by this fraction of its side on every
side (clipped to the image): the zoom-in view moves by a few pixels from click to click
(the mask's box changes), and a region that still contains the new view is reused."""

CRF_REUSE_AREA = 1.5
"""``CrfCache`` rebuilds when the cached region is more than this many times the view's area
(e.g. the full frame of the first click vs the zoom-in of the second)."""

Region = tuple[int, int, int, int]


class _CrfPlan:
    """The dense CRF of one image region at the grid it runs on: the region itself, or a
    downscaled grid of at most ``max_pixels`` pixels with the spatial scales (sxy) shrunk
    alike. A ``reusable`` plan holds the built ``DenseCRF`` (its lattices), so refining
    another probability map of the same region costs only the mean-field iterations; a
    one-off plan runs ``dense_crf``, whose native buffers are reused from call to call (a
    video refines frame after frame)."""

    def __init__(self, image: np.ndarray, region: Region, settings: CrfSettings, *, reusable: bool):
        x0, y0, x1, y1 = region
        self.region = region
        params = dict(settings.params)
        area = (x1 - x0) * (y1 - y0)
        self.small: tuple[int, int] | None = None  # (width, height) of the downscaled grid
        crop = image[y0:y1, x0:x1]
        if settings.max_pixels is not None and area > settings.max_pixels:
            from PIL import Image

            f = (settings.max_pixels / area) ** 0.5
            self.small = (max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f)))
            crop = np.asarray(Image.fromarray(crop).resize(self.small, Image.BILINEAR))
            params["sxy_gaussian"] *= f
            params["sxy_bilateral"] *= f
        params["threads"] = settings.threads
        self._crf = DenseCRF(crop, **params) if reusable else None
        self._crop, self._params = (None, None) if reusable else (crop, params)

    def _refine(self, prob: np.ndarray) -> np.ndarray:
        if self._crf is None:
            return dense_crf(self._crop, prob, **self._params)
        return self._crf.refine(prob)

    def apply(self, prob: np.ndarray) -> None:
        """Refines the region of ``prob`` (H, W) float32 in place."""
        x0, y0, x1, y1 = self.region
        if self.small is None:
            prob[y0:y1, x0:x1] = self._refine(np.ascontiguousarray(prob[y0:y1, x0:x1]))
            return
        from PIL import Image

        region = Image.fromarray(np.ascontiguousarray(prob[y0:y1, x0:x1]), mode="F")
        small_prob = np.clip(np.asarray(region.resize(self.small, Image.BILINEAR)), 0.0, 1.0)
        refined = self._refine(small_prob)
        prob[y0:y1, x0:x1] = np.asarray(Image.fromarray(refined, mode="F").resize((x1 - x0, y1 - y0), Image.BILINEAR))


class CrfCache:
    """The CRF of the last click's region, kept for the next clicks on the same image: their
    views differ by a few pixels, so the cache builds the CRF for the view grown by
    ``CRF_REGION_MARGIN`` and reuses it while a new view fits inside and is not much smaller
    (``CRF_REUSE_AREA``). Keyed by the image object (call ``clear`` when the image changes:
    an array modified in place keeps its identity), the settings and the region. Not
    thread-safe (one per click pipeline)."""

    def __init__(self) -> None:
        self._image: np.ndarray | None = None
        self._key: tuple | None = None
        self._plan: _CrfPlan | None = None
        self.builds = 0  # plans built so far (hits = calls - builds)

    def clear(self) -> None:
        self._image, self._key, self._plan = None, None, None

    def plan(self, image: np.ndarray, roi: Region, settings: CrfSettings) -> _CrfPlan:
        """A plan whose region contains ``roi`` (built when the cached one does not fit)."""
        key = (tuple(sorted(settings.params.items())), settings.max_pixels)
        cached = self._plan
        if (cached is not None and self._image is image and self._key == key and _contains(cached.region, roi)
                and _area(cached.region) <= CRF_REUSE_AREA * _area(roi)):
            return cached
        self._image, self._key = image, key
        self._plan = _CrfPlan(image, _grow(roi, CRF_REGION_MARGIN, image.shape[:2]), settings, reusable=True)
        self.builds += 1
        return self._plan


def _area(r: Region) -> int:
    return (r[2] - r[0]) * (r[3] - r[1])


def _contains(outer: Region, inner: Region) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def _grow(r: Region, fraction: float, shape: tuple[int, int]) -> Region:
    """``r`` grown by ``fraction`` of its larger side on every side, clipped to (h, w) ``shape``."""
    m = int(round(fraction * max(r[2] - r[0], r[3] - r[1])))
    return max(0, r[0] - m), max(0, r[1] - m), min(shape[1], r[2] + m), min(shape[0], r[3] + m)


def refine_with_crf(image: np.ndarray, prob: np.ndarray, roi: Region, settings: CrfSettings, *,
                    cache: CrfCache | None = None) -> None:
    """Dense CRF on the ``roi`` (x0, y0, x1, y1; x1/y1 exclusive) of ``prob`` (H, W) float32
    with ``image`` (H, W, 3) uint8, in place; downscaled to ``settings.max_pixels`` when the
    region is larger. With a ``cache`` (clicks on one image), the CRF's lattices are reused
    from the previous call when its region (``roi`` grown a little) still covers ``roi``."""
    if roi[2] <= roi[0] or roi[3] <= roi[1]:
        return
    plan = _CrfPlan(image, roi, settings, reusable=False) if cache is None else cache.plan(image, roi, settings)
    plan.apply(prob)


FRAME_CRF_THRESHOLD = 0.02
"""A propagated frame's CRF runs on the box of the pixels whose probability is above this
(grown by ``FRAME_CRF_REACH``): far from them every neighbour is background too, so the CRF
cannot lift a pixel there above 0.5 and the frame's other pixels are left as they are."""

def object_region(prob: np.ndarray, settings: CrfSettings, reach: float = FRAME_CRF_REACH) -> Region | None:
    """The region (x0, y0, x1, y1; exclusive ends) of a (H, W) float32 probability map that
    the CRF of a propagated frame needs: the box of ``prob > FRAME_CRF_THRESHOLD`` grown by
    ``reach`` x sxy_bilateral pixels, clipped to the map. None when no pixel is above the
    threshold (nothing for the CRF to refine)."""
    above = prob > FRAME_CRF_THRESHOLD
    rows = np.flatnonzero(above.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(above.any(axis=0))
    reach = int(np.ceil(reach * float(settings.params["sxy_bilateral"])))
    h, w = prob.shape
    return (max(0, int(cols[0]) - reach), max(0, int(rows[0]) - reach),
            min(w, int(cols[-1]) + 1 + reach), min(h, int(rows[-1]) + 1 + reach))


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


def gate_box(prior: np.ndarray, margin: float) -> Region:
    """Where an object can be on the next frame: the (H, W) {0,1} ``prior`` mask's box grown
    by ``margin`` x its size + 10% of the frame size on every side, clipped to the frame
    (x0, y0, x1, y1; exclusive ends). ``prior`` must have a foreground pixel."""
    from .formats.rle import mask_bbox

    x, y, bw, bh = mask_bbox(prior)
    h, w = prior.shape
    mx, my = int(margin * bw + 0.1 * w), int(margin * bh + 0.1 * h)
    return max(0, x - mx), max(0, y - my), min(w, x + bw + mx), min(h, y + bh + my)


def gate_to_prior(prob: np.ndarray, box: Region) -> None:
    """Zeroes ``prob`` (H, W) outside ``box`` (``gate_box`` of the previous frame's mask), in
    place: an object moves a bounded distance between frames, while look-alikes far away are
    OSVOS's typical false positives."""
    x0, y0, x1, y1 = box
    prob[:y0] = 0.0
    prob[y1:] = 0.0
    prob[:, :x0] = 0.0
    prob[:, x1:] = 0.0


def confidence(prob: np.ndarray) -> float:
    """1 minus the share of uncertain pixels (0.2 < p < 0.8) among object + uncertain pixels
    of a (H, W) probability map, in [0, 1]."""
    uncertain = int(np.count_nonzero((prob > 0.2) & (prob < 0.8)))
    return 1.0 - uncertain / max(int(np.count_nonzero(prob > 0.5)) + uncertain, 1)

