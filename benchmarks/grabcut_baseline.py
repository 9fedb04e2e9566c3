"""OpenCV GrabCut driven by clicks: the classical baseline of the paper (section 3.3).

Per prediction:
- box: the bounding box of all positive clicks and the current mask, grown by a margin; pixels
  outside it are certain background (the paper's heuristic: GrabCut does poorly without one);
- inside the box: probable foreground where the current mask is on (everywhere in the box
  before the first prediction, as in GrabCut's rectangle init), probable background elsewhere;
- clicks are hard seeds: a disk of ``seed_radius`` px, foreground for positive clicks and
  background for negative ones (later clicks overwrite earlier ones where disks overlap);
- ``iterations`` rounds of GrabCut (GMM colour models + graph cut) from that mask.
OpenCV is imported on first use.
"""
from __future__ import annotations

import numpy as np

from ivos._validate import rgb_image
from ivos.evaluation.clicker import Click


class GrabCutSegmenter:
    """A ``Segmenter`` (ivos.evaluation.noc) running ``cv2.grabCut``.

    Args:
        iterations: GrabCut rounds per prediction.
        seed_radius: radius (px) of each click's hard seed disk.
        margin: box margin as a fraction of the box's longer side ...
        min_margin: ... but at least this fraction of the image's shorter side, so a single
            click still gets a box large enough to hold an object.
    """

    def __init__(self, *, iterations: int = 5, seed_radius: int = 5, margin: float = 0.15,
                 min_margin: float = 0.15, name: str = "grabcut"):
        self.name = name
        self.iterations = iterations
        self.seed_radius = seed_radius
        self.margin = margin
        self.min_margin = min_margin
        self._bgr: np.ndarray | None = None

    def set_image(self, image: np.ndarray) -> None:
        """image: (H, W, 3) uint8 RGB."""
        # cv2.grabCut wants 8-bit 3-channel; the colour order only permutes the GMM features.
        self._bgr = np.ascontiguousarray(rgb_image("image", image)[..., ::-1])

    def _box(self, clicks: list[Click], prev: np.ndarray | None, h: int, w: int) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1), half-open, around positive clicks and the previous mask."""
        ys = [c.y for c in clicks if c.positive]
        xs = [c.x for c in clicks if c.positive]
        if prev is not None and prev.any():
            rows, cols = np.flatnonzero(prev.any(axis=1)), np.flatnonzero(prev.any(axis=0))
            ys += [rows[0], rows[-1]]
            xs += [cols[0], cols[-1]]
        if not ys:  # only negative clicks and nothing predicted: the whole image is the box
            return 0, h, 0, w
        y0, y1, x0, x1 = min(ys), max(ys) + 1, min(xs), max(xs) + 1
        m = int(round(max(self.margin * max(y1 - y0, x1 - x0), self.min_margin * min(h, w))))
        return max(0, y0 - m), min(h, y1 + m), max(0, x0 - m), min(w, x1 + m)

    def predict(self, clicks: list[Click], prev_mask: np.ndarray | None) -> np.ndarray:
        """(H, W) bool mask from all clicks ((x, y) pixels) and the previous mask (or None)."""
        import cv2

        if self._bgr is None:
            raise RuntimeError("GrabCutSegmenter.predict called before set_image")
        h, w = self._bgr.shape[:2]
        prev = None if prev_mask is None else np.asarray(prev_mask).astype(bool)
        y0, y1, x0, x1 = self._box(clicks, prev, h, w)
        mask = np.full((h, w), cv2.GC_BGD, np.uint8)
        mask[y0:y1, x0:x1] = cv2.GC_PR_FGD if prev is None else np.where(
            prev[y0:y1, x0:x1], cv2.GC_PR_FGD, cv2.GC_PR_BGD)
        for c in clicks:
            cv2.circle(mask, (c.x, c.y), self.seed_radius,
                       int(cv2.GC_FGD if c.positive else cv2.GC_BGD), thickness=-1)
        fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        if fg.all() or not fg.any():  # GrabCut needs samples of both colour models
            return fg
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(self._bgr, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
