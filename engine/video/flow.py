"""Optical-flow warping of the previous frame's mask (the temporal prior of propagation).

Why: the OSVOS head reads the neighbouring frame's mask as a prior. Under fast motion that
mask sits beside the object, and the head must both find and re-shape it; warped by the
flow between the two frames it already sits on the object. OpenCV's DIS flow (ultrafast
preset) at half resolution costs a few milliseconds a 480p frame on one core.
"""
from __future__ import annotations

import numpy as np

FLOW_SCALE = 0.5
"""Flow is computed on frames resized by this factor (then scaled back up)."""


class MaskWarper:
    """Warps masks from one frame to the next with DIS optical flow. Not thread-safe."""

    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)

    def grey(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> the (h, w) uint8 grey image the flow is computed on."""
        cv2 = self._cv2
        g = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        return cv2.resize(g, None, fx=FLOW_SCALE, fy=FLOW_SCALE, interpolation=cv2.INTER_AREA)

    def flow(self, grey_to: np.ndarray, grey_from: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """(H, W, 2) float32 sampling map: pixel (y, x) of the ``to`` frame sits at
        (map[..., 1], map[..., 0]) of the ``from`` frame. ``shape``: (H, W) of the frames."""
        cv2 = self._cv2
        f = self._dis.calc(grey_to, grey_from, None)  # to(x) ~ from(x + f(x)), at FLOW_SCALE
        h, w = shape
        f = cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) / FLOW_SCALE
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        f[..., 0] += xs
        f[..., 1] += ys
        return f

    def warp(self, mask: np.ndarray, sampling: np.ndarray) -> np.ndarray:
        """(H, W) uint8 {0,1} mask of the ``from`` frame -> (H, W) uint8 {0,1} on the ``to`` frame."""
        cv2 = self._cv2
        out = cv2.remap(mask.astype(np.float32), sampling[..., 0], sampling[..., 1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return (out > 0.5).astype(np.uint8)
