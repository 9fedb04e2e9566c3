"""Mask agreement measures shared by the runtime (``suggest_frame``), the evaluation protocol
(``ivos.evaluation``) and the benchmarks: one definition each."""
from __future__ import annotations

import numpy as np


def iou(a: np.ndarray, b: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of two (H, W) masks (nonzero = object) over the pixels where
    ``ignore`` is zero (all pixels when None); 1.0 when both are empty there."""
    a, b = a.astype(bool, copy=False), b.astype(bool, copy=False)
    inter, union = a & b, a | b
    if ignore is not None:
        keep = ~ignore.astype(bool, copy=False)
        inter &= keep
        union &= keep
    n = np.count_nonzero(union)
    return float(np.count_nonzero(inter) / n) if n else 1.0
