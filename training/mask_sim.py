"""Simulated imperfect masks: stand-ins for the propagated video masks that the refinement
network corrects (paper 2.3, ``VideoPredictor.refine``).

A propagated mask is usually close to the object with a wrong boundary, sometimes drifted,
with a stray blob on a look-alike or a missing part, sometimes spilled over into a large
background region next to the object (a leak: the object then is a small part of the mask),
and now and then lost altogether. The refinement network then sees that mask plus the
user's correction clicks *only* (no earlier clicks on the object). Training only on the
paper's correction examples (the no-mask model's prediction plus the first interaction's
clicks plus corrections) leaves that case unseen: a single negative click on a stray blob
then wipes out the whole object (measured on the DAVIS dev worst frames before this module
existed). ``perturbed_mask`` makes such masks from the ground truth; ``training.train``
pairs them with correction clicks alone.

All sizes scale with the object's size L = sqrt(area) in pixels. Same generator state, same
mask.
"""
from __future__ import annotations

import cv2
import numpy as np

from .click_sim import inside_distance

P_LOST = 0.08
"""Probability that the mask sits away from the object (tracking lost)."""

P_EXTRA_BLOB = 0.35
"""Probability of 1-2 false-positive blobs near the object (drift onto a look-alike)."""

P_LEAK = 0.15
"""Probability that the mask spills over into the background next to the object: a smooth
region 0.5-2.5 L in radius overlapping the object (propagation latching onto an adjacent
look-alike such as water or grass; one correction click on it must not erase the object)."""

P_MISSING_PART = 0.3
"""Probability of a part of the object cut away (occlusion, fast motion)."""

SHIFT_STD = 0.05
"""Std of the global shift, in units of L."""

BOUNDARY_NOISE = 0.08
"""Amplitude of the smooth boundary displacement, in units of L."""


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32: + distance to the background inside, - distance to the object outside."""
    return inside_distance(mask) - inside_distance(~mask)


def _smooth_noise(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 noise in [-1, 1] varying over about ``scale_px`` pixels."""
    h, w = shape
    gh, gw = max(2, int(np.ceil(h / scale_px)) + 1), max(2, int(np.ceil(w / scale_px)) + 1)
    coarse = rng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(-1.0, 1.0)


def _ellipse(shape: tuple[int, int], center: tuple[float, float], radii: tuple[float, float], angle: float) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.ellipse(out, (int(round(center[0])), int(round(center[1]))),
                (max(1, int(round(radii[0]))), max(1, int(round(radii[1])))), angle, 0, 360, 1, -1)
    return out.astype(bool)


def perturbed_mask(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible wrong mask of the object ``gt`` (bool (H, W), non-empty): shifted, scaled
    and rotated a little, maybe leaking into a large adjacent region, its boundary displaced
    smoothly, maybe with a stray blob, a missing part, or (rarely) lost to a nearby place.
    Returns bool (H, W)."""
    h, w = gt.shape
    ys, xs = np.nonzero(gt)
    cx, cy = float(xs.mean()), float(ys.mean())
    size = float(np.sqrt(len(xs)))
    lost = rng.random() < P_LOST
    shift = rng.normal(0.0, SHIFT_STD * size, 2)
    if lost:
        direction = rng.uniform(0.0, 2.0 * np.pi)
        shift = rng.uniform(0.8, 1.5) * size * np.array([np.cos(direction), np.sin(direction)])
    affine = cv2.getRotationMatrix2D((cx, cy), float(rng.uniform(-6, 6)), float(rng.uniform(0.9, 1.1)))
    affine[:, 2] += shift
    warped = cv2.warpAffine(gt.astype(np.uint8), affine, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
    if not warped.any():
        warped = gt.copy()
    if not lost and rng.random() < P_LEAK:
        radii = size * rng.uniform(0.5, 2.5, 2)
        direction = rng.uniform(0.0, 2.0 * np.pi)
        reach = rng.uniform(0.3, 1.0) * radii.max()
        center = (cx + reach * np.cos(direction), cy + reach * np.sin(direction))
        warped |= _ellipse((h, w), center, tuple(radii), float(rng.uniform(0, 180)))
    amplitude = BOUNDARY_NOISE * size * rng.uniform(0.2, 1.0)
    noise = _smooth_noise((h, w), max(4.0, size * rng.uniform(0.15, 0.5)), rng)
    mask = _signed_distance(warped) + amplitude * (noise + rng.uniform(-0.3, 0.3)) > 0
    if rng.random() < P_EXTRA_BLOB:
        for _ in range(int(rng.integers(1, 3))):
            center = (cx + rng.normal(0, size), cy + rng.normal(0, size))
            radii = tuple(size * rng.uniform(0.1, 0.35, 2))
            mask |= _ellipse((h, w), center, radii, float(rng.uniform(0, 180)))
    if rng.random() < P_MISSING_PART and mask.any():
        my, mx = np.nonzero(mask)
        k = int(rng.integers(len(mx)))
        radii = tuple(size * rng.uniform(0.15, 0.4, 2))
        mask &= ~_ellipse((h, w), (mx[k], my[k]), radii, float(rng.uniform(0, 180)))
    return mask
