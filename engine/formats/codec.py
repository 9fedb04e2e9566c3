"""Masks on the wire, both ways: the one codec of the HTTP API, used by ``ivos serve`` and by
``ivos.Client`` alike.

Out (``encode_mask``): a JSON object with the formats the client asked for: ``rle``, COCO
*uncompressed* RLE (``{"size": [H, W], "counts": [...]}``, column-major, starting with
background: ``ivos.formats.mask_files.rle_encode``; ``pycocotools.mask.frPyObjects`` reads it) and/or
``png``, a base64 8-bit PNG (0 / 255), plus ``area`` (pixels) and ``bbox`` ([x, y, w, h]).

In (``decode_mask``): ``{"rle": {...}}`` (uncompressed counts) or ``{"png": "<base64>"}``
(any PNG whose nonzero pixels are the object), checked against the image size when one is
given. A malformed payload raises ``InvalidMask`` (an ``InvalidInput``) naming what was wrong;
the server answers it with 422 ``invalid_mask``.
"""
from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .rle import mask_bbox, rle_decode, rle_encode

MASK_FORMATS = ("rle", "png")
"""The encodings a mask payload may carry."""


class InvalidMask(InvalidInput):
    """A mask payload that cannot be decoded (the message names the field and what is wrong)."""


def png_bytes(array: np.ndarray) -> bytes:
    """(H, W) uint8 array -> PNG file bytes (fast compression: masks compress well anyway)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def encode_mask(mask: np.ndarray, formats: tuple[str, ...] = ("rle",)) -> dict:
    """uint8 (H, W) {0,1} mask -> {"rle"?, "png"?, "area", "bbox"}."""
    out: dict[str, Any] = {}
    if "rle" in formats:
        out["rle"] = rle_encode(mask)
    if "png" in formats:
        out["png"] = base64.b64encode(png_bytes(mask.astype(np.uint8) * np.uint8(255))).decode("ascii")
    out["area"] = int(np.count_nonzero(mask))
    out["bbox"] = mask_bbox(mask)
    return out


def encode_probabilities(prob: np.ndarray) -> str:
    """float32 (H, W) in [0, 1] -> base64 8-bit PNG of round(p * 255)."""
    q = np.clip(np.round(np.asarray(prob, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return base64.b64encode(png_bytes(q)).decode("ascii")


def decode_mask(value: Any, height: int | None = None, width: int | None = None, name: str = "mask") -> np.ndarray:
    """{"rle": {...}} or {"png": base64} -> uint8 (H, W) {0,1}; with ``height`` and ``width``
    the payload must be that size. ``InvalidMask`` naming ``name`` when it is malformed."""
    if not isinstance(value, dict) or len(value.keys() & {"rle", "png"}) != 1:
        raise InvalidMask(f"{name} must be an object with exactly one of 'rle' (COCO uncompressed "
                          "RLE {size: [H, W], counts: [...]}) or 'png' (base64 PNG)")
    sized = height is not None and width is not None
    if "rle" in value:
        rle = value["rle"]
        if not isinstance(rle, dict) or not isinstance(rle.get("counts"), list):
            raise InvalidMask(f"{name}.rle must be {{'size': [H, W], 'counts': [ints]}} (uncompressed counts)")
        if sized and list(rle.get("size", [])) != [height, width]:
            raise InvalidMask(f"{name}.rle size is {rle.get('size')}, the image is [{height}, {width}] ([H, W])")
        size = rle.get("size")
        limit = int(np.prod(size)) + 1 if isinstance(size, list) and all(isinstance(v, int) for v in size) else None
        if (limit is not None and len(rle["counts"]) > limit) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in rle["counts"]):
            raise InvalidMask(f"{name}.rle counts must be non-negative integers summing to H*W")
        try:
            return rle_decode(rle)
        except InvalidInput as e:
            raise InvalidMask(f"{name}.rle: {e}") from None
    from PIL import Image, UnidentifiedImageError

    try:
        data = base64.b64decode(value["png"], validate=True)
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG":
                raise InvalidMask(f"{name}.png is a {im.format} image, expected PNG")
            if sized and im.size != (width, height):
                raise InvalidMask(f"{name}.png is {im.size[0]}x{im.size[1]}, the image is {width}x{height}")
            array = np.asarray(im.convert("L"))
    except (binascii.Error, TypeError, ValueError) as e:
        raise InvalidMask(f"{name}.png is not base64: {e}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise InvalidMask(f"{name}.png cannot be decoded as a PNG: {e}") from None
    return (array > 0).astype(np.uint8)
