"""Click encodings fed to the click network, at the network's input resolution.

* ``"gaussian"`` (the paper, 1 channel): ``ivos.render_clicks(h, w, clicks, sigma=CLICK_SIGMA,
  strokes=...)``: +/- truncated Gaussians summed and clipped to [-1, 1].
* ``"distmap"`` (iFCN, Xu et al. 2016; 2 channels, the Table-1 ablation): channel 0 is the
  Euclidean distance (pixels) from every pixel to the nearest positive click or stroke,
  channel 1 to the nearest negative one, truncated at ``DISTMAP_TRUNCATE`` = 255 and divided
  by 255, so values lie in [0, 1]; 1 everywhere when there is no click of that sign.

Clicks are ``(N, 3)`` float ``(x, y, label)`` in network pixels (x = column, y = row, label 1
positive / 0 negative); strokes are ``(points (M, 2) xy, label)`` polylines.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..network_io import CLICK_SIGMA

DISTMAP_TRUNCATE = 255.0
"""iFCN distance maps are truncated at this many pixels, then scaled to [0, 1]."""

ENCODINGS = ("gaussian", "distmap")


def click_channels(encoding: str) -> int:
    """Number of input channels the encoding produces."""
    if encoding == "gaussian":
        return 1
    if encoding == "distmap":
        return 2
    raise ValueError(f"unknown click encoding {encoding!r}; expected one of {ENCODINGS}")


def distance_maps(height: int, width: int, clicks: np.ndarray,
                  strokes: Sequence[tuple[np.ndarray, int]] = ()) -> np.ndarray:
    """iFCN encoding: (2, height, width) float32 in [0, 1] (see the module docstring)."""
    import cv2

    out = np.ones((2, height, width), np.float32)
    clicks = np.asarray(clicks, np.float32).reshape(-1, 3)
    for channel, label in ((0, 1), (1, 0)):
        # distanceTransform measures the distance to the nearest ZERO pixel: draw seeds as 0.
        seeds = np.full((height, width), 255, np.uint8)
        drawn = False
        for x, y, lab in clicks:
            xi, yi = int(round(float(x))), int(round(float(y)))
            if int(lab) == label and 0 <= xi < width and 0 <= yi < height:
                seeds[yi, xi] = 0
                drawn = True
        for points, lab in strokes:
            if int(lab) == label:
                pts = np.round(np.asarray(points, np.float32)).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(seeds, [pts], False, 0, 1)
                drawn = True
        if drawn:
            dist = cv2.distanceTransform(seeds, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            out[channel] = np.minimum(dist, DISTMAP_TRUNCATE) / DISTMAP_TRUNCATE
    return out


def encode_clicks(height: int, width: int, clicks: np.ndarray, encoding: str, *,
                  sigma: float = CLICK_SIGMA,
                  strokes: Sequence[tuple[np.ndarray, int]] = ()) -> np.ndarray:
    """Encodes clicks (and strokes) for the network: (click_channels(encoding), H, W) float32."""
    if encoding == "gaussian":
        import ivos

        clicks = np.asarray(clicks, np.float32).reshape(-1, 3)
        return ivos.render_clicks(height, width, clicks, sigma=sigma, strokes=list(strokes))[None]
    if encoding == "distmap":
        return distance_maps(height, width, clicks, strokes)
    raise ValueError(f"unknown click encoding {encoding!r}; expected one of {ENCODINGS}")
