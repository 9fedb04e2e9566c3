"""Refinement strategies that measured worse than the runtime's default (the network's whole
correction), kept for the sweep that compares them (``benchmarks/refine_sweep.py``,
benchmarks/results/video_ablations.md). Each is an ``ivos.video.predictor.RefineStrategy``:
``ivos.VideoPredictor(..., refine_strategy=LimitedRefinement(...))``.
"""
from __future__ import annotations

import numpy as np

from ivos.image.geometry import MIN_ZOOM_SIDE, ZOOM_EXPANSION, Box, zoom_box


class LimitedRefinement:
    """Limits where a correction may change the mask.

    Args:
        radius: keep the network's new mask only within this fraction of the frame diagonal
            around the frame's clicks (the mask before elsewhere); None: no limit. Measured:
            0.2 was the default while the click network was weaker.
        connected: keep only the connected regions of the change (new vs before) that hold a
            click (FocalClick's progressive merge). Measured: +4.8 vs +8.5 after one click.
        focus: let the network see only the connected regions of the mask that the new
            clicks concern (the one under each click, or the nearest), and keep the mask
            before outside that view. Measured: +5.9 vs +8.5 after one click.
        min_zoom_side, zoom_expansion: the focus view's geometry (``ivos.image.geometry.zoom_box``).
    """

    def __init__(self, radius: float | None = None, *, connected: bool = False, focus: bool = False,
                 min_zoom_side: int = MIN_ZOOM_SIDE, zoom_expansion: float = ZOOM_EXPANSION):
        self.radius, self.connected, self.focus = radius, connected, focus
        self.min_zoom_side, self.zoom_expansion = min_zoom_side, zoom_expansion

    def view(self, base: np.ndarray, points: np.ndarray) -> Box | None:
        """With ``focus``: the zoom-in box around the connected regions of ``base`` (H, W)
        that ``points`` (N, 2) (x, y) concern, and the points; None otherwise or when
        ``base`` is empty."""
        if not self.focus:
            return None
        import cv2

        count, labels = cv2.connectedComponents(base.astype(np.uint8), connectivity=8)
        if count < 2:
            return None
        ys, xs = np.nonzero(labels)
        chosen = set()
        for x, y in points:
            nearest = int(np.argmin((xs - x) ** 2 + (ys - y) ** 2))
            chosen.add(int(labels[ys[nearest], xs[nearest]]))
        h, w = base.shape
        return zoom_box(h, w, np.isin(labels, list(chosen)), np.asarray(points), min_side=self.min_zoom_side,
                        expansion=self.zoom_expansion)

    def merge(self, base: np.ndarray, proposal: np.ndarray, clicks: list, view: Box | None) -> np.ndarray:
        """(H, W) uint8: ``proposal`` where the settings let it reach, ``base`` elsewhere."""
        h, w = base.shape
        mask = proposal
        if view is not None:
            x0, y0, x1, y1 = view.clip(h, w)
            mask = base.copy()
            mask[y0:y1, x0:x1] = proposal[y0:y1, x0:x1]
        if self.radius is not None:
            near = near_clicks(h, w, clicks, self.radius * float(np.hypot(h, w)))
            mask = np.where(near, mask, base).astype(np.uint8)
        if self.connected:
            mask = changes_at_clicks(base, mask, clicks)
        return mask


def changes_at_clicks(base: np.ndarray, new: np.ndarray, clicks: list) -> np.ndarray:
    """(H, W) uint8: ``base`` with only those 8-connected regions of ``new != base`` that
    contain a click pixel ((x, y, label) tuples) taken over from ``new``."""
    import cv2

    changed = (new != base).astype(np.uint8)
    _, labels = cv2.connectedComponents(changed, connectivity=8)
    h, w = base.shape
    hit = {int(labels[min(h - 1, int(round(y))), min(w - 1, int(round(x)))]) for x, y, _ in clicks}
    hit.discard(0)  # the unchanged background label
    keep = np.isin(labels, list(hit))
    return np.where(keep, new, base).astype(np.uint8)


def near_clicks(h: int, w: int, clicks: list, radius: float) -> np.ndarray:
    """(h, w) bool: pixels within ``radius`` px of any (x, y, label) click."""
    yy, xx = np.ogrid[0:h, 0:w]
    near = np.zeros((h, w), bool)
    for x, y, _ in clicks:
        near |= (xx - x) ** 2 + (yy - y) ** 2 <= radius * radius
    return near
