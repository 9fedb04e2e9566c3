"""Augmented square training views of one cached object.

The runtime shows the network a zoom-in crop around the object (or the clicks) resized to the
working size, so most views are object crops with context; some are whole-image views
(non-uniformly resized, as a first click on a full frame would be). Both are one affine warp
of the cached image (scale, translation, optional horizontal flip) straight to ``size`` x
``size``, plus colour jitter.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ivos.image.crops import PAD_RGB

from .data import Entry

P_FULL_VIEW = 0.2
"""Probability of a whole-image view instead of an object crop."""

CONTEXT = (1.2, 2.5)
"""Object crops span the object's bbox longer side times a factor in this range."""

MIN_VISIBLE_PX = 64
"""A view must show at least this many object pixels (else it is redrawn)."""


@dataclass
class View:
    """image (S, S, 3) uint8 RGB; gt (S, S) bool object; others (S, S) bool other objects' pixels."""

    image: np.ndarray
    gt: np.ndarray
    others: np.ndarray


def _object_affine(mask: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = max(x1 - x0, y1 - y0, 16) * rng.uniform(*CONTEXT)
    cx = (x0 + x1) / 2 + rng.uniform(-0.15, 0.15) * side
    cy = (y0 + y1) / 2 + rng.uniform(-0.15, 0.15) * side
    s = size / side
    return np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float64)


def _full_affine(shape: tuple[int, int], size: int) -> np.ndarray:
    h, w = shape
    return np.array([[size / w, 0, 0], [0, size / h, 0]], np.float64)


def _jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation each scaled by a factor in [0.75, 1.25]."""
    img = image.astype(np.float32)
    gray = img.mean(axis=2, keepdims=True)
    img = gray + (img - gray) * rng.uniform(0.75, 1.25)          # saturation
    img = img.mean() + (img - img.mean()) * rng.uniform(0.75, 1.25)  # contrast
    img = img * rng.uniform(0.75, 1.25)                             # brightness
    return np.clip(img, 0, 255).astype(np.uint8)


def make_view(entry: Entry, obj: int, size: int, rng: np.random.Generator, *,
              augment: bool = True, tries: int = 5) -> View | None:
    """A ``size`` x ``size`` view of object ``entry.objects[obj]``; None if no try shows at
    least MIN_VISIBLE_PX of it. ``augment=False``: a centred crop with context 1.6, no flip,
    no jitter (deterministic validation views)."""
    ids = np.array(entry.objects[obj], np.uint16)
    mask = np.isin(entry.labels, ids)
    for _ in range(tries):
        if not augment:
            ys, xs = np.nonzero(mask)
            side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, 16) * 1.6
            s = size / side
            m = np.array([[s, 0, size / 2 - s * (xs.min() + xs.max() + 1) / 2],
                          [0, s, size / 2 - s * (ys.min() + ys.max() + 1) / 2]])
        elif rng.random() < P_FULL_VIEW:
            m = _full_affine(mask.shape, size)
        else:
            m = _object_affine(mask, size, rng)
        if augment and rng.random() < 0.5:
            m = np.array([[-1, 0, size - 1], [0, 1, 0]], np.float64) @ np.vstack([m, [0, 0, 1]])
        image = cv2.warpAffine(entry.image, m, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=PAD_RGB)
        # label 0 is background in DAVIS/COCO; BSDS has no 0 label, so the pad never matches an object
        labels = cv2.warpAffine(entry.labels, m, (size, size), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        gt = np.isin(labels, ids)
        if gt.sum() >= MIN_VISIBLE_PX:
            other_ids = [i for o in entry.objects for i in o if i not in entry.objects[obj]]
            others = np.isin(labels, other_ids) & ~gt
            return View(_jitter(image, rng) if augment else image, gt, others)
    return None
