"""Copy-paste composites for small objects in clutter (issue #27).

The cached training objects are mostly large (DAVIS, BSDS regions) and a view frames its
object at 1.2-2.5x its box (``training.augment``), so the network rarely sees what the
COCO128 held-aside set is full of: a small object among other things, partly hidden. A
composite takes a background view of one training image, cuts an object out of another
(``cut_object``), pastes it at a scale drawn log-uniformly in object-share-of-view
(``SHARE_RANGE``: small objects oversampled), then pastes 0-``MAX_OCCLUDERS`` more cut-outs,
some over the object (occluders) and some beside it (distractors). The view's ``gt`` is the
object's visible pixels, ``others`` every pasted pixel that is not the object (the simulated
user never clicks there first, as for real neighbours).

Composites are whole-image-like views (the object anywhere, at any size), the situation of a
first click on a photo; ``training.train --composite-fraction`` mixes them into every batch.
"""
from __future__ import annotations

import cv2
import numpy as np

from ivos.image.crops import PAD_RGB

from .augment import View, _full_affine, _jitter
from .data import Cache, Entry

SHARE_RANGE = (0.001, 0.25)
"""The pasted object's area as a share of the view, drawn log-uniformly: half the composites
hold an object below 1.6% of the view (the held-aside set's < 1% bucket is half its objects)."""

MAX_OCCLUDERS = 3
"""Most extra cut-outs pasted after the object (0..MAX_OCCLUDERS, uniformly)."""

P_OVER = 0.5
"""Probability that an extra cut-out is placed over the object (an occluder) rather than
anywhere in the view (a distractor)."""

MAX_HIDDEN = 0.6
"""An occluder may hide at most this share of the object's pasted pixels (else it is moved off)."""

MIN_VISIBLE_PX = 24
"""A composite keeps at least this many object pixels (smaller than ``augment.MIN_VISIBLE_PX``:
tiny objects are the point); else it is redrawn."""


def _random_entry(cache: Cache, rng: np.random.Generator) -> Entry:
    sources = [s for s, es in cache.train.items() if es]
    entries = cache.train[sources[int(rng.integers(len(sources)))]]
    return entries[int(rng.integers(len(entries)))]


def cut_object(entry: Entry, obj: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The tight crop of object ``obj`` of ``entry``: (rgb (h, w, 3) uint8, mask (h, w) bool);
    None when it has no pixel."""
    mask = np.isin(entry.labels, np.array(entry.objects[obj], np.uint16))
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return entry.image[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def _paste(canvas: np.ndarray, rgb: np.ndarray, mask: np.ndarray, side_scale: float, cx: float, cy: float,
           flip: bool) -> np.ndarray:
    """Pastes the cut-out (``rgb``, ``mask``) scaled by ``side_scale`` and centred at
    (``cx``, ``cy``) into ``canvas`` (S, S, 3) in place; returns the pasted pixels (S, S) bool.
    The edge is blended over one pixel (a hard cut-out edge is a cue real photos lack)."""
    size = canvas.shape[0]
    h, w = mask.shape
    m = np.array([[side_scale, 0, cx - side_scale * w / 2], [0, side_scale, cy - side_scale * h / 2]], np.float64)
    if flip:
        m = np.array([[-1, 0, 2 * cx], [0, 1, 0]], np.float64) @ np.vstack([m, [0, 0, 1]])
    rgb_w = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = cv2.warpAffine(mask.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = cv2.GaussianBlur(alpha, (3, 3), 0.6)[..., None]
    canvas[...] = (canvas * (1 - alpha) + rgb_w * alpha + 0.5).astype(np.uint8)
    return alpha[..., 0] > 0.5


def make_composite(cache: Cache, size: int, rng: np.random.Generator, *, tries: int = 5,
                   max_share: float = SHARE_RANGE[1]) -> View | None:
    """One composite view (``View``: image, gt, others) of ``size`` x ``size``, its object
    covering ``SHARE_RANGE[0]``..``max_share`` of it (log-uniformly); None when no try keeps
    ``MIN_VISIBLE_PX`` object pixels."""
    for _ in range(tries):
        background = _random_entry(cache, rng)
        canvas = cv2.warpAffine(background.image, _full_affine(background.image.shape[:2], size), (size, size),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=PAD_RGB)
        source = _random_entry(cache, rng)
        cut = cut_object(source, int(rng.integers(len(source.objects))))
        if cut is None:
            continue
        rgb, mask = cut
        share = float(np.exp(rng.uniform(np.log(SHARE_RANGE[0]), np.log(max_share))))
        scale = np.sqrt(share * size * size / max(int(mask.sum()), 1))
        bw, bh = mask.shape[1] * scale, mask.shape[0] * scale
        if max(bw, bh) > size:  # a long thin object at a large share: shrink to fit the view
            scale *= size / max(bw, bh)
            bw, bh = mask.shape[1] * scale, mask.shape[0] * scale
        cx = rng.uniform(bw / 2, max(bw / 2, size - bw / 2))
        cy = rng.uniform(bh / 2, max(bh / 2, size - bh / 2))
        gt = _paste(canvas, rgb, mask, scale, cx, cy, bool(rng.random() < 0.5))
        pasted_area = int(gt.sum())
        others = np.zeros_like(gt)
        for _ in range(int(rng.integers(MAX_OCCLUDERS + 1))):
            extra_entry = _random_entry(cache, rng)
            extra = cut_object(extra_entry, int(rng.integers(len(extra_entry.objects))))
            if extra is None:
                continue
            e_rgb, e_mask = extra
            # Up to twice the object's share, and at most twice SHARE_RANGE's top: a wider
            # ``max_share`` makes larger objects, not cut-outs that would cover the whole view.
            e_top = min(max(share * 2, SHARE_RANGE[0] * 2), SHARE_RANGE[1] * 2)
            e_share = float(np.exp(rng.uniform(np.log(SHARE_RANGE[0]), np.log(e_top))))
            e_scale = np.sqrt(e_share * size * size / max(int(e_mask.sum()), 1))
            if rng.random() < P_OVER:  # over the object's edge: centre within its box
                ex, ey = cx + rng.uniform(-0.6, 0.6) * bw, cy + rng.uniform(-0.6, 0.6) * bh
            else:
                ex, ey = rng.uniform(0, size), rng.uniform(0, size)
            before = canvas.copy()
            covered = _paste(canvas, e_rgb, e_mask, e_scale, ex, ey, bool(rng.random() < 0.5))
            if np.count_nonzero(gt & covered) > MAX_HIDDEN * pasted_area:
                canvas[...] = before  # would hide too much of the object: leave it out
                continue
            gt &= ~covered
            others |= covered
        if gt.sum() >= MIN_VISIBLE_PX:
            return View(_jitter(canvas, rng), gt, others)
    return None
