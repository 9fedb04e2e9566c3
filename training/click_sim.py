"""Simulated user interactions for training (paper section 2.1.1, after iFCN, Xu et al. 2016).

All functions take boolean (H, W) masks and a ``numpy.random.Generator`` (the only source of
randomness: same seed, same clicks) and return clicks as float32 ``(N, 3)`` arrays of
``(x, y, label)``, x = column, y = row (integer pixel centres), label 1 positive / 0 negative,
the layout ``ivos.render_clicks`` takes. Strokes are ``(points (M, 2) float32 xy, label)``.

* Positives: inside the object, at least ``d_margin`` px from its boundary and ``d_step`` px
  from every earlier click.
* Negatives, three strategies: (1) uniformly in the band of background pixels within ``d_hull``
  px of the object (and ``d_margin`` px away from it); (2) on other objects of the image; (3)
  as (1) but each click maximally distant from the earlier ones (they surround the object).
* Strokes (paper 4.1): short polylines whose every point lies in the region's interior.
* Corrections: given a prediction, clicks in its error regions (positive in false negatives,
  negative in false positives), ``d_step`` px apart.

Distances are Euclidean, in pixels, from ``cv2.distanceTransform`` (exact mask).
"""
from __future__ import annotations

import cv2
import numpy as np

D_MARGIN = 3
"""Minimum distance (px) of a click from the boundary of the region it is in."""

D_STEP = 5
"""Minimum distance (px) between two clicks."""

D_HULL = 40
"""Width (px) of the background band around the object where strategy-1/3 negatives go."""

N_CORR_CHOICES = (0, 1, 2, 3, 4, 5, 10, 20)
"""Numbers of correction clicks sampled for correction examples (paper 2.1.1)."""

STRATEGIES = (1, 2, 3)


def inside_distance(region: np.ndarray) -> np.ndarray:
    """(H, W) float32: distance of each region pixel to the nearest non-region pixel (0 outside).
    Pixels beyond the image border count as neither: a region touching the border is not
    penalised there (the border is no boundary of the object)."""
    return cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _empty() -> np.ndarray:
    return np.zeros((0, 3), np.float32)


def _pick_spaced(candidates: np.ndarray, n: int, rng: np.random.Generator, previous: np.ndarray,
                 d_step: float) -> np.ndarray:
    """Up to n points drawn uniformly from ``candidates`` (K, 2) xy, each >= d_step from the
    others and from ``previous`` (P, 2). Returns (n', 2) float32, n' <= n."""
    chosen: list[np.ndarray] = []
    pool = candidates.astype(np.float32)
    if len(previous):
        far = np.min(np.linalg.norm(pool[:, None] - previous[None, :, :2], axis=2), axis=1) >= d_step
        pool = pool[far]
    while len(chosen) < n and len(pool):
        p = pool[rng.integers(len(pool))]
        chosen.append(p)
        pool = pool[np.linalg.norm(pool - p, axis=1) >= d_step]
    return np.array(chosen, np.float32).reshape(-1, 2)


def _xy(region: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(region)
    return np.stack([xs, ys], axis=1)


def _labelled(points: np.ndarray, label: int) -> np.ndarray:
    return np.concatenate([points, np.full((len(points), 1), label, np.float32)], axis=1)


def positive_clicks(mask: np.ndarray, n: int, rng: np.random.Generator, *, d_margin: float = D_MARGIN,
                    d_step: float = D_STEP, previous: np.ndarray = _empty()) -> np.ndarray:
    """Up to n positive clicks inside ``mask`` (bool (H, W)), >= d_margin px from its boundary
    and >= d_step px from each other and from ``previous`` clicks. (n', 3) float32."""
    candidates = _xy(inside_distance(mask) >= d_margin)
    return _labelled(_pick_spaced(candidates, n, rng, previous, d_step), 1)


def hull_band(mask: np.ndarray, *, d_margin: float = D_MARGIN, d_hull: float = D_HULL) -> np.ndarray:
    """(H, W) bool: background pixels whose distance to the object is in [d_margin, d_hull]."""
    dist = inside_distance(~mask)
    return (dist >= d_margin) & (dist <= d_hull)


def negative_clicks(mask: np.ndarray, n: int, rng: np.random.Generator, strategy: int, *,
                    other_objects: np.ndarray | None = None, d_margin: float = D_MARGIN,
                    d_step: float = D_STEP, d_hull: float = D_HULL,
                    previous: np.ndarray = _empty()) -> np.ndarray:
    """Up to n negative clicks for the object ``mask`` (bool (H, W)) by ``strategy``:

    1. uniformly in ``hull_band`` (background, d_margin..d_hull px from the object);
    2. on ``other_objects`` (bool (H, W), pixels of other objects), >= d_margin inside them and
       off the object; falls back to strategy 1 where there are none;
    3. in ``hull_band``, the first uniformly, each next one the band pixel farthest from all
       earlier clicks (farthest-point sampling), so that they surround the object.

    All are >= d_step px from each other and from ``previous``. Returns (n', 3) float32.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == 2 and other_objects is not None:
        candidates = _xy((inside_distance(other_objects & ~mask) >= d_margin))
        if len(candidates):
            return _labelled(_pick_spaced(candidates, n, rng, previous, d_step), 0)
    band = _xy(hull_band(mask, d_margin=d_margin, d_hull=d_hull)).astype(np.float32)
    if strategy in (1, 2):
        return _labelled(_pick_spaced(band, n, rng, previous, d_step), 0)
    chosen: list[np.ndarray] = []
    min_dist = np.full(len(band), np.inf, np.float32)
    for p in previous[:, :2]:
        np.minimum(min_dist, np.linalg.norm(band - p, axis=1), out=min_dist)
    for _ in range(n):
        if not len(band):
            break
        if chosen or len(previous):
            i = int(np.argmax(min_dist))
            if min_dist[i] < d_step:
                break
        else:
            i = int(rng.integers(len(band)))
        chosen.append(band[i])
        np.minimum(min_dist, np.linalg.norm(band - band[i], axis=1), out=min_dist)
    return _labelled(np.array(chosen, np.float32).reshape(-1, 2), 0)


def stroke(region: np.ndarray, rng: np.random.Generator, label: int, *, d_margin: float = D_MARGIN,
           n_vertices: tuple[int, int] = (2, 4), seg_len: tuple[float, float] = (8.0, 40.0),
           tries: int = 20) -> tuple[np.ndarray, int] | None:
    """A short polyline (paper 4.1: users also draw strokes) inside ``region`` (bool (H, W)):
    every point of every segment (checked at 1 px spacing) lies >= d_margin px from the region's
    boundary. Returns ``(points (M, 2) float32 xy, label)`` or None when the region has no room.
    ``n_vertices`` is the inclusive range of M, ``seg_len`` of segment lengths (px)."""
    interior = inside_distance(region) >= d_margin
    start_pool = _xy(interior)
    if not len(start_pool):
        return None
    h, w = region.shape
    points = [start_pool[rng.integers(len(start_pool))].astype(np.float32)]
    n = int(rng.integers(n_vertices[0], n_vertices[1] + 1))
    while len(points) < n:
        for _ in range(tries):
            angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(*seg_len)
            end = np.round(points[-1] + length * np.array([np.cos(angle), np.sin(angle)], np.float32))
            t = np.linspace(0.0, 1.0, int(np.ceil(length)) + 1, dtype=np.float32)[:, None]
            line = np.round(points[-1] + t * (end - points[-1])).astype(np.int64)
            if (line.min() >= 0 and line[:, 0].max() < w and line[:, 1].max() < h
                    and interior[line[:, 1], line[:, 0]].all()):
                points.append(end.astype(np.float32))
                break
        else:
            break
    return np.array(points, np.float32), int(label)


def correction_clicks(gt: np.ndarray, pred: np.ndarray, n: int, rng: np.random.Generator, *,
                      d_step: float = D_STEP, d_margin: float = D_MARGIN,
                      previous: np.ndarray = _empty()) -> np.ndarray:
    """Up to n correction clicks for the prediction ``pred`` of ``gt`` (both bool (H, W)):
    uniformly over the error pixels (positive on false negatives gt & ~pred, negative on false
    positives pred & ~gt), >= d_step px apart and from ``previous``. Error pixels >= d_margin
    px inside their error region are preferred (a user clicks into an error, not on its edge);
    thin error regions with no such pixel are sampled anywhere. Returns (n', 3) float32."""
    fn, fp = gt & ~pred, pred & ~gt
    out = []
    for region, label in ((fn, 1), (fp, 0)):
        dist = inside_distance(region)
        deep = dist >= d_margin
        out.append(_labelled(_xy(deep if deep.any() else region).astype(np.float32), label))
    pool = np.concatenate(out)
    if len(previous):
        pool = pool[np.min(np.linalg.norm(pool[:, None, :2] - previous[None, :, :2], axis=2), axis=1) >= d_step]
    chosen = []
    while len(chosen) < n and len(pool):
        c = pool[rng.integers(len(pool))]
        chosen.append(c)
        pool = pool[np.linalg.norm(pool[:, :2] - c[:2], axis=1) >= d_step]
    return np.array(chosen, np.float32).reshape(-1, 3)
