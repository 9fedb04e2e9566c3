"""The RLE codec: every mask that crosses a file or a wire is run-length encoded here.

Uncompressed (``rle_encode`` / ``rle_decode``): COCO's *uncompressed* RLE, ``{"size": [H, W],
"counts": [...]}``: the mask flattened in column-major (Fortran) order, run lengths alternating
background / foreground and starting with background (a leading 0 when the first pixel is
foreground). ``pycocotools.mask.frPyObjects`` reads it.

Compressed (``coco_rle``): the same counts as COCO's compressed string (pycocotools'
``rleToString``), for COCO JSON files. Our own code, checked against pycocotools' format in the
tests, to keep the runtime dependency-free.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .._validate import describe
from ..errors import InvalidInput


def rle_encode(mask: np.ndarray) -> dict:
    """(H, W) {0,1} mask -> COCO uncompressed RLE dict (see the module docstring)."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise InvalidInput(f"mask must be a 2-D (H, W) array, got {describe(mask)}")
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def rle_decode(rle: dict) -> np.ndarray:
    """COCO uncompressed RLE dict -> (H, W) uint8 {0,1} mask."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = np.asarray(rle["counts"], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"rle must be {{'size': [H, W], 'counts': [ints]}}, got {describe(rle)}") from None
    if counts.sum() != h * w or (counts < 0).any():
        raise InvalidInput(f"rle counts sum to {int(counts.sum())}, expected H*W = {h * w}")
    values = np.arange(len(counts)) % 2
    flat = np.repeat(values.astype(np.uint8), counts)
    return flat.reshape((w, h)).T.copy()


def mask_bbox(mask: np.ndarray) -> list[int]:
    """[x, y, width, height] of the mask's pixels ([0, 0, 0, 0] when empty)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def rle_compress(counts: Sequence[int]) -> str:
    """COCO's compressed RLE string for uncompressed ``counts`` (pycocotools' ``rleToString``:
    each count, minus the count two before it from the third on, in 5-bit groups + 48)."""
    chars = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            chars.append(chr((c | 0x20 if more else c) + 48))
    return "".join(chars)


def coco_rle(mask: np.ndarray) -> dict:
    """(H, W) mask -> COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    rle = rle_encode(mask)
    return {"size": rle["size"], "counts": rle_compress(rle["counts"])}
