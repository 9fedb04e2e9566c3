"""``PredictorSegmenter``: an ``ivos.ImagePredictor`` as a ``Segmenter`` of the evaluation loop
(``ivos.evaluation.noc``).

The predictor API this relies on (DESIGN.md section 4):
    predictor.set_image(image)                       # (H, W, 3) uint8 RGB
    result = predictor.predict(point_coords,         # (N, 2) float32, (x, y) original pixels
                               point_labels,         # (N,) int32, 1 positive / 0 negative
                               mask_input=prev,      # (H, W) uint8 {0,1} or None
                               crf=bool)             # keyword-only
    result.mask                                      # (H, W) uint8 {0,1}
"""
from __future__ import annotations

import numpy as np

from .clicker import Click


class PredictorSegmenter:
    """Runs an ``ivos.ImagePredictor`` statelessly: every predict() passes all clicks so far and
    the previous mask, exactly what the evaluation loop hands over.

    Args:
        predictor: an ``ivos.ImagePredictor`` (or anything with the API above).
        name: the method's name in reports.
        crf: run the dense CRF after the network.
    """

    def __init__(self, predictor, *, name: str, crf: bool):
        self.predictor = predictor
        self.name = name
        self.crf = crf

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def predict(self, clicks: list[Click], prev_mask: np.ndarray | None) -> np.ndarray:
        coords = np.array([[c.x, c.y] for c in clicks], dtype=np.float32).reshape(-1, 2)
        labels = np.array([int(c.positive) for c in clicks], dtype=np.int32)
        prev = None if prev_mask is None else np.asarray(prev_mask).astype(np.uint8)
        result = self.predictor.predict(coords, labels, mask_input=prev, crf=self.crf)
        return result.mask
