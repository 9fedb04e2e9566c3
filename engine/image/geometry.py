"""Where the network looks: view boxes in original pixels and the maps between original
and working (network) coordinates.

A ``Box`` covers original pixel *edges* ``[x0, x0 + width) x [y0, y0 + height)`` (integers;
it may extend past the image, the outside is padded with the mean colour). The network sees
it resized to ``size x size``: the full view is the whole image resized non-uniformly (as
in training), zoom-in views are squares. Pixel centres sit at integer coordinates in both
frames (x = column), so an original x maps to ``(x + 0.5 - x0) * size / width - 0.5``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ZOOM_EXPANSION = 1.4
"""The zoom-in box is the bounding box of the mask and clicks, enlarged by this factor
(RITM's ZoomIn value): enough context for the network to see the object's surroundings."""

MIN_ZOOM_SIDE = 64
"""Smallest zoom-in box side in original pixels. Training crops frame every object at
1.2-2.5x its box side (objects of 16 px and up), so a small object in a large minimum view
is a scale the network rarely saw: with 200 px, one negative click next to a 13 px object
(DAVIS surf) made the network erase it (IoU 0.80 -> 0.19), with 64 px it kept it (0.75).
Below 64 px the view would only upsample blur. On the held-aside DAVIS train frames (large
objects) 64 and 200 give the same NoC (benchmarks/results/click_crf_sweep.md)."""

FULL_VIEW_FRACTION = 0.8
"""A zoom box at least this fraction of the full view's side is replaced by the full view."""


@dataclass(frozen=True)
class Box:
    x0: int
    y0: int
    width: int
    height: int

    def clip(self, height: int, width: int) -> tuple[int, int, int, int]:
        """The part inside a height x width image as (x0, y0, x1, y1), x1/y1 exclusive."""
        return (max(0, self.x0), max(0, self.y0), min(width, self.x0 + self.width),
                min(height, self.y0 + self.height))

    def scale(self, size: int) -> np.ndarray:
        """Working pixels per original pixel along (x, y)."""
        return np.array([size / self.width, size / self.height], np.float64)

    def to_working(self, xy: np.ndarray, size: int) -> np.ndarray:
        """(N, 2) original (x, y) -> working coordinates, float32."""
        origin = np.array([self.x0, self.y0], np.float64)
        return ((np.asarray(xy, np.float64) + 0.5 - origin) * self.scale(size) - 0.5).astype(np.float32)


def full_view(height: int, width: int) -> Box:
    """The whole image (resized non-uniformly to the working square, as in training)."""
    return Box(0, 0, width, height)


def zoom_box(height: int, width: int, mask: np.ndarray | None, points: np.ndarray, *,
             min_side: int = MIN_ZOOM_SIDE, expansion: float = ZOOM_EXPANSION) -> Box:
    """The view for the next prediction: the full view when there is no mask yet, else a
    square around the mask's bounding box and all points, enlarged by ``expansion``.

    Args:
        mask: uint8/bool (height, width) current mask or None.
        points: (N, 2) float (x, y) of every click/stroke vertex in original pixels.
        min_side: smallest box side in original pixels (default ``MIN_ZOOM_SIDE``).
        expansion: box side / side of the mask-and-points bounding box (default
            ``ZOOM_EXPANSION``).
    """
    full = full_view(height, width)
    full_side = max(height, width)
    if mask is None or not mask.any():
        return full
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    x_lo, x_hi, y_lo, y_hi = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
    if len(points):
        x_lo = min(x_lo, int(np.floor(points[:, 0].min())))
        x_hi = max(x_hi, int(np.ceil(points[:, 0].max())) + 1)
        y_lo = min(y_lo, int(np.floor(points[:, 1].min())))
        y_hi = max(y_hi, int(np.ceil(points[:, 1].max())) + 1)
    side = int(np.ceil(max(x_hi - x_lo, y_hi - y_lo) * expansion))
    side = max(side, min(min_side, full_side))
    if side >= FULL_VIEW_FRACTION * full_side:
        return full
    cx, cy = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
    return Box(int(round(cx - side / 2)), int(round(cy - side / 2)), side, side)


def focus_box(height: int, width: int, mask: np.ndarray | None, points: np.ndarray, *, min_side: int,
              expansion: float = ZOOM_EXPANSION) -> Box:
    """The zoom-in view for a second look at a small object seen through the full view: the
    square of ``zoom_box`` around ``mask`` (may be empty or None) and ``points``, at least
    ``min_side`` original pixels (so an object the full view missed, seen only as the click,
    is framed with the context around it); the full view when that square would be nearly
    as large."""
    if mask is not None and mask.any():
        return zoom_box(height, width, mask, points, min_side=min_side, expansion=expansion)
    if not len(points):
        return full_view(height, width)
    x_lo, y_lo = np.floor(points.min(axis=0))
    x_hi, y_hi = np.ceil(points.max(axis=0)) + 1
    side = max(int(np.ceil(max(x_hi - x_lo, y_hi - y_lo) * expansion)), min(min_side, max(height, width)))
    if side >= FULL_VIEW_FRACTION * max(height, width):
        return full_view(height, width)
    cx, cy = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
    return Box(int(round(cx - side / 2)), int(round(cy - side / 2)), side, side)
