"""The iFCN click encoding (Xu et al. 2016), kept for the Table-1 ablation: two channels
holding the Euclidean distance (pixels) from each pixel centre to the nearest positive and
to the nearest negative click or stroke, truncated at ``DISTMAP_TRUNCATE`` and divided by it
(so values lie in [0, 1]; 1 everywhere when there is no click of that kind).

Not part of the runtime's click path: training and export (``ivos.export``) and evaluation
(``ivos.bench``) share it from here; a distmap bundle runs with
``ImagePredictor(model, click_encoder=encoder)``."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..ops.clicks import segment_dist2

DISTMAP_TRUNCATE = 255.0


def render_distance_maps(height: int, width: int, clicks: np.ndarray, *,
                         strokes: Sequence[tuple[np.ndarray, int]] = (), out: np.ndarray | None = None) -> np.ndarray:
    """(2, height, width) float32: [positive, negative] truncated distance maps.

    Args:
        clicks: (N, 3) float (x, y, label) in pixels, label 1 positive / 0 negative.
        strokes: (points (M, 2), label) polylines; distance to the polyline.
        out: optional (2, height, width) float32 buffer, overwritten.
    """
    py = np.arange(height, dtype=np.float64)[:, None]
    px = np.arange(width, dtype=np.float64)[None, :]
    dist2 = np.full((2, height, width), DISTMAP_TRUNCATE**2)
    for x, y, label in np.asarray(clicks, np.float64).reshape(-1, 3):
        channel = 0 if label > 0.5 else 1
        np.minimum(dist2[channel], (px - x) ** 2 + (py - y) ** 2, out=dist2[channel])
    for points, label in strokes:
        pts = np.asarray(points, np.float64)
        channel = 0 if label else 1
        ends = pts[1:] if len(pts) > 1 else pts
        for a, b in zip(pts, ends):
            np.minimum(dist2[channel], segment_dist2(px, py, a, b), out=dist2[channel])
    result = (np.sqrt(dist2) / DISTMAP_TRUNCATE).astype(np.float32)
    if out is None:
        return result
    out[...] = result
    return out


def encoder(size: int, clicks: np.ndarray, strokes: Sequence[tuple[np.ndarray, int]], out: np.ndarray) -> None:
    """``ivos.image.click_pipeline.ClickEncoder`` of this encoding: ``out`` (2, size, size) float32."""
    render_distance_maps(size, size, clicks, strokes=strokes, out=out)
