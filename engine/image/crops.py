"""Views: the part of an image a network sees, and the way back to original pixels.

A click view is a ``Box`` (original pixels, ``ivos.image.geometry``) resized to the network's
square working size; OSVOS frames are letterboxed instead (``ivos.video.osvos.runner``). This
module holds what both share (the padding colour, normalisation, the logistic) and the click
view: crop + resize + normalise into the bound image buffer (cached while the view stays),
masks into the bound mask buffer, low-resolution logits carried from one view to the next,
and logits back to a probability map of the original image.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .geometry import Box

PAD_RGB = (124, 116, 104)
"""Padding colour for view pixels outside the image: the ImageNet mean, i.e. 0 after
normalisation (the training crops pad the same way)."""

OUTSIDE_LOGIT = -20.0
"""Logit given to view pixels where the previous view saw nothing (background, p ~ 2e-9)."""


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 logistic of ``x``, into ``out`` (same shape, float32) or a new array."""
    out = np.negative(x, out=out, dtype=np.float32)
    with np.errstate(over="ignore"):  # logits below -88 overflow exp to inf: probability 0, as it should
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


class Normaliser:
    """RGB uint8 (h, w, 3) -> the network's (3, h, w) float32 input, ``(rgb - mean) / std``
    with the bundle's mean/std (given for RGB in [0, 1])."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self._mean = np.array(mean, np.float32).reshape(3, 1, 1) * 255.0
        self._inv_std = 1.0 / (np.array(std, np.float32).reshape(3, 1, 1) * 255.0)

    def into(self, rgb: np.ndarray, out: np.ndarray) -> None:
        """Writes the normalised ``rgb`` (h, w, 3) uint8 into ``out`` (3, h, w) float32."""
        np.subtract(rgb.transpose(2, 0, 1), self._mean, out=out, dtype=np.float32)
        out *= self._inv_std


def crop_padded(array: np.ndarray, box: Box, fill) -> np.ndarray:
    """The ``box`` part of ``array`` (H, W[, C]), padded with ``fill`` outside the array (a
    view of ``array`` when the box lies inside it)."""
    h, w = array.shape[:2]
    x0, y0, x1, y1 = box.clip(h, w)
    if (x0, y0, x1 - x0, y1 - y0) == (box.x0, box.y0, box.width, box.height):
        return array[y0:y1, x0:x1]
    canvas = np.empty((box.height, box.width) + array.shape[2:], array.dtype)
    canvas[...] = fill
    canvas[y0 - box.y0:y1 - box.y0, x0 - box.x0:x1 - box.x0] = array[y0:y1, x0:x1]
    return canvas


class ClickView:
    """One image seen through square views of ``size`` x ``size`` working pixels.

    Not thread-safe. The image buffer given to ``load_image`` is assumed to keep what was
    written into it until the next ``load_image`` (the predictor owns its run context), so a
    view loaded twice in a row is normalised once.
    """

    def __init__(self, size: int, normaliser: Normaliser):
        self.size = size
        self._normaliser = normaliser
        self._image: np.ndarray | None = None
        self._loaded: Box | None = None

    @property
    def image(self) -> np.ndarray | None:
        """The (H, W, 3) uint8 image, or None before ``set_image``."""
        return self._image

    def set_image(self, image: np.ndarray) -> None:
        """Binds a checked, C-contiguous (H, W, 3) uint8 image (not copied: do not change it)."""
        self._image = image
        self._loaded = None

    def load_image(self, box: Box, out: np.ndarray) -> None:
        """Crops, resizes and normalises the ``box`` view into ``out`` (3, size, size) float32,
        unless that view is already there."""
        if box == self._loaded:
            return
        from PIL import Image

        crop = crop_padded(self._image, box, PAD_RGB)
        resized = np.asarray(Image.fromarray(crop).resize((self.size, self.size), Image.BILINEAR))
        self._normaliser.into(resized, out)
        self._loaded = box

    def load_mask(self, box: Box, mask: np.ndarray | None, out: np.ndarray) -> None:
        """The ``box`` view of an (H, W) bool mask into ``out`` (size, size) float32 as {0, 1}
        (zeros for None)."""
        if mask is None:
            out[...] = 0.0
            return
        from PIL import Image

        crop = crop_padded(mask.view(np.uint8) * np.uint8(255), box, 0)
        resized = np.asarray(Image.fromarray(crop).resize((self.size, self.size), Image.BILINEAR))
        np.greater(resized, 127, out=out, casting="unsafe")

    def carry_logits(self, logits: np.ndarray, source: Box, target: Box) -> np.ndarray:
        """(size, size) float32 logits of view ``source`` resampled into view ``target``
        (bilinear; ``OUTSIDE_LOGIT`` where ``source`` saw nothing). The same array when the
        views are equal: no trip through the original resolution."""
        if source == target:
            return logits
        from PIL import Image

        # Edge coordinates: target working x_t covers original X = target.x0 + x_t * tw / size,
        # which source sees at x_s = (X - source.x0) * size / sw. PIL samples at pixel centres
        # of both images with this same affine map, so centres map to centres.
        a = target.width / source.width
        e = target.height / source.height
        c = (target.x0 - source.x0) * self.size / source.width
        f = (target.y0 - source.y0) * self.size / source.height
        img = Image.fromarray(np.ascontiguousarray(logits, np.float32), mode="F")
        out = img.transform((self.size, self.size), Image.AFFINE, (a, 0.0, c, 0.0, e, f), resample=Image.BILINEAR,
                            fillcolor=OUTSIDE_LOGIT)
        return np.asarray(out, np.float32)

    def to_original(self, box: Box, logits: np.ndarray) -> np.ndarray:
        """Foreground probability (H, W) float32 of the image: the view's (size, size) float32
        logits resized back to original pixels inside the image, 0 outside the view."""
        from PIL import Image

        h, w = self._image.shape[:2]
        x0, y0, x1, y1 = box.clip(h, w)
        sx, sy = box.scale(self.size)
        src = ((x0 - box.x0) * sx, (y0 - box.y0) * sy, (x1 - box.x0) * sx, (y1 - box.y0) * sy)
        region = np.asarray(Image.fromarray(logits, mode="F").resize((x1 - x0, y1 - y0), Image.BILINEAR, box=src))
        prob = np.zeros((h, w), np.float32)
        sigmoid(region, out=prob[y0:y1, x0:x1])
        return prob
