"""``PredictorSegmenter``: an ``ivos.ImagePredictor`` as a ``Segmenter`` of the evaluation loop
(``ivos.evaluation.noc``), measured on the path an interactive user takes: ``add_click``.

The predictor API this relies on (docs/design-guide.md section 4):
    predictor.set_image(image)                       # (H, W, 3) uint8 RGB; forgets the clicks
    result = predictor.add_click(x, y, positive)     # (x, y) original pixels
    result.mask                                      # (H, W) uint8 {0,1}
"""
from __future__ import annotations

import numpy as np

from .clicker import Click


class PredictorSegmenter:
    """Runs an ``ivos.ImagePredictor`` the way a user does: each ``predict`` of the evaluation
    loop adds the clicks it has not seen yet with ``add_click``, so the predictor carries its
    own state from click to click (its low-resolution logits), exactly as in an annotation
    tool. The loop's ``prev_mask`` is the predictor's own previous mask and is not needed.

    Args:
        predictor: an ``ivos.ImagePredictor`` (its settings, e.g. ``crf``, apply).
        name: the method's name in reports.
    """

    def __init__(self, predictor, *, name: str):
        self.predictor = predictor
        self.name = name
        self._added = 0

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)
        self._added = 0

    def predict(self, clicks: list[Click], prev_mask: np.ndarray | None) -> np.ndarray:
        if len(clicks) < self._added or (self._added == 0 and prev_mask is not None):
            raise ValueError("PredictorSegmenter follows one click session per image: the evaluation loop must "
                             "extend the clicks it passed before, starting from no mask")
        for c in clicks[self._added:]:
            self.predictor.add_click(c.x, c.y, c.positive)
        self._added = len(clicks)
        return self.predictor.result.mask
