"""Helpers every benchmark shares: one definition of the percentile summary."""
from __future__ import annotations

from typing import Iterable

import numpy as np


def percentiles(values: Iterable[float], *, scale: float = 1.0, suffix: str = "") -> dict[str, float]:
    """p50 / p90 / p99 / mean of ``values`` times ``scale`` (e.g. 1e3: seconds -> ms), keys
    ending in ``suffix`` (e.g. "_ms"), and their count "n"."""
    v = np.asarray(list(values), np.float64) * scale
    out = {f"p{q}{suffix}": float(np.percentile(v, q)) for q in (50, 90, 99)}
    out[f"mean{suffix}"] = float(v.mean())
    out["n"] = int(v.size)
    return out
