"""Synthetic two-frame clips from static images, for the memory mode's heads (STM's static-image
pre-training, on our own data).

DAVIS gives 30 sequences; objects that turn, deform or meet look-alikes are rare among them.
A clip here is an everyday photo (coco128-seg) with one of its instances as the object:

* frame A: the photo, scaled to fill the working size around the object (like a video
  frame, no letterbox bars), and the object's mask: the memory frame;
* frame B: frame A under a random affine map about the object (rotation, scale, shear,
  shift) with a distractor pasted near the object: another instance cut out of another
  photo, scaled to the object's size (it may occlude the object: the target loses those
  pixels).

A training example is frame B's trunk features, the prior the memory mode feeds its head
(``(1 - share) * stale mask + share * readout``: the stale mask is frame A's, deformed as the
DAVIS examples' t-3 masks are; the readout reads frame A's memory with frame B's keys) and B's
mask as the target: the head learns to combine the two signals where they disagree.
"""
from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger("ivos.training")


def _fill(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The photo scaled to cover ``size`` (h, w) and cropped around the object's centre, as a
    video frame is filled (no letterbox bars): ((h, w, 3) uint8, (h, w) float32 {0,1})."""
    import cv2

    h, w = size
    s = max(h / image.shape[0], w / image.shape[1])
    big = cv2.resize(image, (max(w, round(image.shape[1] * s)), max(h, round(image.shape[0] * s))),
                     interpolation=cv2.INTER_LINEAR)
    m = cv2.resize(mask.astype(np.uint8), (big.shape[1], big.shape[0]), interpolation=cv2.INTER_NEAREST)
    ys, xs = np.nonzero(m)
    y0 = int(np.clip(ys.mean() - h / 2, 0, big.shape[0] - h))
    x0 = int(np.clip(xs.mean() - w / 2, 0, big.shape[1] - w))
    return np.ascontiguousarray(big[y0:y0 + h, x0:x0 + w]), m[y0:y0 + h, x0:x0 + w].astype(np.float32)


def _affine(centre: tuple[float, float], size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A 2x3 map about the object's ``centre`` (x, y): rotation +-20 deg, scale 0.8-1.2,
    shear +-0.1, shift +-8% of the frame size (a fast object's motion between memory frames)."""
    import cv2

    h, w = size
    m = cv2.getRotationMatrix2D(centre, float(rng.uniform(-20, 20)), float(rng.uniform(0.8, 1.2)))
    m[0, 1] += rng.uniform(-0.1, 0.1)
    m[:, 2] += rng.uniform(-0.08, 0.08, 2) * np.array([w, h])
    return m


def make_clip(entries, rng: np.random.Generator, size: tuple[int, int]):
    """One clip at the working ``size``: (image A, mask A, image B, mask B); uint8 images
    (h, w, 3), float32 {0,1} masks (h, w). None when the drawn object is unusable."""
    import cv2

    e = entries[rng.integers(len(entries))]
    obj = e.objects[rng.integers(len(e.objects))]
    mask = np.isin(e.labels, obj)
    if not 0.01 <= mask.mean() <= 0.6:
        return None
    img_a, mask_a = _fill(e.image, mask, size)
    if mask_a.mean() < 0.003:
        return None
    h, w = size
    ys, xs = np.nonzero(mask_a)
    m = _affine((float(xs.mean()), float(ys.mean())), size, rng)
    img_b = cv2.warpAffine(img_a, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask_b = cv2.warpAffine(mask_a, m, (w, h), flags=cv2.INTER_LINEAR) > 0.5
    # a distractor: another photo's instance, scaled to the object's size, pasted at random
    d = entries[rng.integers(len(entries))]
    d_mask = np.isin(d.labels, d.objects[rng.integers(len(d.objects))])
    ys, xs = np.nonzero(d_mask)
    if len(ys) and mask_b.any():
        crop = d.image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        crop_mask = d_mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        oy, ox = np.nonzero(mask_b)
        side = max(oy.max() - oy.min(), ox.max() - ox.min(), 8)
        s = float(np.clip(side * rng.uniform(0.5, 1.2) / max(crop.shape[:2]), 0.05, 4.0))
        ch, cw = max(2, int(crop.shape[0] * s)), max(2, int(crop.shape[1] * s))
        if ch < h and cw < w:
            crop = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_LINEAR)
            crop_mask = cv2.resize(crop_mask.astype(np.uint8), (cw, ch), interpolation=cv2.INTER_NEAREST) > 0
            # near the object: centred within one object size of its centre
            cy = oy.mean() + rng.uniform(-1, 1) * side - ch / 2
            cx = ox.mean() + rng.uniform(-1, 1) * side - cw / 2
            y0, x0 = int(np.clip(cy, 0, h - ch)), int(np.clip(cx, 0, w - cw))
            region = img_b[y0:y0 + ch, x0:x0 + cw]
            region[crop_mask] = crop[crop_mask]
            mask_b[y0:y0 + ch, x0:x0 + cw] &= ~crop_mask
    if mask_b.mean() < 0.003:
        return None
    return img_a, mask_a.astype(np.float32), img_b, mask_b.astype(np.float32)


def synthetic_examples(net, entries, n: int, share: float, size: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    """``n`` examples (the dict of ``training.osvos_parent.build_features``: fp16 low, high,
    prior, target) from ``n`` synthetic clips of ``entries`` (``training.data.Entry``)."""
    import torch

    from ivos.network_io import IMAGENET_MEAN, IMAGENET_STD
    from ivos.postprocess import gate_box
    from ivos.settings import MemorySettings
    from ivos.video.memory_read import FrameKeys, ObjectMemory, Projection
    from ivos.video.osvos.finetune import deform_mask, pool4

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    rng = np.random.default_rng(seed)
    settings = MemorySettings()
    out = {k: [] for k in ("low", "high", "prior", "target")}
    t0 = time.time()

    def features(img):
        x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() - mean) / std
        with torch.inference_mode():
            low, high = net.features(x, torch.zeros(1, 1, *img.shape[:2]))
        return low[0].numpy(), high[0].numpy()

    while len(out["low"]) < n:
        clip = make_clip(entries, rng, size)
        if clip is None:
            continue
        img_a, mask_a, img_b, mask_b = clip
        _, high_a = features(img_a)
        low_b, high_b = features(img_b)
        projection = Projection.fit(high_a)
        keys_a = FrameKeys.of(high_a, (0, 0), size, projection)
        near = keys_a.inside(gate_box(mask_a > 0.5, 0.5))
        memory = ObjectMemory()
        memory.add(0, keys_a.keys[near], keys_a.values(mask_a)[near], annotated=True, capacity=0)
        keys_b = FrameKeys.of(high_b, (0, 0), size, projection)
        readout = keys_b.to_working(memory.read(keys_b.keys, settings), size)
        stale = pool4(deform_mask(mask_a, rng))
        out["low"].append(low_b.astype(np.float16))
        out["high"].append(high_b.astype(np.float16))
        out["prior"].append((((1.0 - share) * stale + share * readout))[None].astype(np.float16))
        out["target"].append(pool4(mask_b)[None].astype(np.float16))
        if len(out["low"]) % 100 == 0:
            log.info("synthetic clips: %d/%d (%.0f s)", len(out["low"]), n, time.time() - t0)
    return {k: np.stack(v) for k, v in out.items()}
