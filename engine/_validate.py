"""Small argument checks shared by the public functions. Each raises ``InvalidInput`` naming
the argument, what it got (type/dtype/shape) and what was expected."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import InvalidInput


def describe(value: Any) -> str:
    """Short description of a value for error messages: dtype and shape for arrays."""
    if isinstance(value, np.ndarray):
        return f"array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {value!r}"[:120]


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InvalidInput(f"{name} must be a positive integer, got {describe(value)}")
    return int(value)


def positive_float(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a positive number, got {describe(value)}") from None
    if not math.isfinite(v) or v <= 0:
        raise InvalidInput(f"{name} must be a positive finite number, got {value!r}")
    return v


def nonnegative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer, got {describe(value)}")
    return int(value)


def rgb_image(name: str, image: Any, *, max_pixels: int | None = None, limit_hint: str = "") -> np.ndarray:
    """An HxWx3 uint8 RGB image with H, W >= 1, returned C-contiguous (a copy only if needed).

    ``max_pixels``: largest H*W accepted (None = no limit), checked before anything is
    copied; ``limit_hint`` (how to raise the limit) ends the error message."""
    if not isinstance(image, np.ndarray):
        raise InvalidInput(f"{name} must be a numpy array of shape (H, W, 3) and dtype uint8, got {describe(image)}")
    if image.dtype != np.uint8:
        raise InvalidInput(f"{name} must have dtype uint8 (RGB 0..255), got {describe(image)}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInput(f"{name} must have shape (H, W, 3) (RGB), got {describe(image)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidInput(f"{name} is empty: {describe(image)}")
    if max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:
        raise InvalidInput(f"{name} is too large: {describe(image)} has {image.shape[0] * image.shape[1]:,} pixels, "
                           f"more than the limit of {max_pixels:,}" + (f"; {limit_hint}" if limit_hint else ""))
    return np.ascontiguousarray(image)


def flag(name: str, value: Any, *, allow_none: bool = False) -> bool | None:
    """A yes/no argument: ``bool``/``numpy.bool_``, or the integers 0/1 (numpy too).

    Anything else (strings such as "no", None unless ``allow_none``, 0.5, 2, arrays) is
    refused rather than passed through ``bool()``, which would turn "no" and 0.5 into True."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    expected = "True/False (or 1/0)" + (" or None" if allow_none else "")
    raise InvalidInput(f"{name} must be {expected}, got {describe(value)}")


def click_labels(name: str, labels: Any, n: int) -> np.ndarray:
    """(n,) labels of clicks as int64: 1 positive, 0 negative. Booleans and integers 0/1 only:
    a float label (0.7) has no meaning here and is refused rather than rounded."""
    try:
        arr = np.asarray(labels)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{name} must be an array of shape ({n},) holding 1 (positive) / 0 (negative), "
                           f"got {describe(labels)}") from None
    if arr.ndim != 1 or len(arr) != n:
        raise InvalidInput(f"{name} must have shape ({n},) to match the {n} points, got {describe(arr)}")
    if arr.dtype.kind not in "biu" and not (n == 0 and arr.dtype.kind == "f"):
        hint = " (use labels.astype(int) if they are whole numbers)" if arr.dtype.kind == "f" else ""
        raise InvalidInput(f"{name} must hold integers 1 (positive) / 0 (negative) or booleans, got "
                           f"{describe(arr)}{hint}")
    if n and arr.dtype.kind != "b" and not np.all((arr == 0) | (arr == 1)):
        raise InvalidInput(f"{name} must be 1 (positive) or 0 (negative), got values {np.unique(arr)[:5].tolist()}")
    return arr.astype(np.int64)


def image_points(name: str, points: Any, height: int, width: int, *, allow_empty: bool = False) -> np.ndarray:
    """(N, 2) float32 (x, y) points inside a height x width image, N >= 1 (0 with allow_empty).

    Continuous pixel coordinates, x = column, y = row: pixel ``image[i, j]`` spans
    ``j <= x < j + 1``, ``i <= y < i + 1``, so integer coordinates name pixels and a point is
    inside when ``0 <= x < width`` and ``0 <= y < height`` (x = width - 0.5 is in the last
    column; x = width, negative, NaN or infinite values are refused)."""
    try:
        arr = np.asarray(points)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{name} must be an array of shape (N, 2) holding (x, y), got {describe(points)}") from None
    if arr.dtype.kind not in "iuf":
        raise InvalidInput(f"{name} must hold real numbers (x, y), got {describe(arr)}")
    if allow_empty and arr.shape in ((0,), (0, 2)):
        return np.zeros((0, 2), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0:
        raise InvalidInput(f"{name} must have shape (N>=1, 2) holding (x, y), got {describe(arr)}")
    xy = arr.astype(np.float64)
    if not np.all(np.isfinite(xy)):
        raise InvalidInput(f"{name} contains NaN or infinite values ({describe(arr)})")
    x, y = xy[:, 0], xy[:, 1]
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    if outside.any():
        bx, by = xy[np.argmax(outside)]
        raise InvalidInput(f"{name} has a point outside the {width}x{height} image: (x={bx:g}, y={by:g}); "
                           f"expected 0 <= x < {width}, 0 <= y < {height} (x = column, y = row)")
    out = xy.astype(np.float32)
    # float32 rounding can move a point just below the edge onto it: keep it inside.
    np.minimum(out[:, 0], np.nextafter(np.float32(width), np.float32(0)), out=out[:, 0])
    np.minimum(out[:, 1], np.nextafter(np.float32(height), np.float32(0)), out=out[:, 1])
    return out


def image_coordinate(name: str, value: Any, limit: int, axis: str) -> float:
    """One click coordinate (``x`` < width or ``y`` < height), a real finite number in
    ``[0, limit)`` (see ``image_points``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInput(f"{name} must be a number (the {axis}, in pixels), got {describe(value)}")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v) or not 0 <= v < limit:
        raise InvalidInput(f"{name} must be a {axis} inside the image, 0 <= {name} < {limit}, got {value!r}")
    # The click path works in float32, whose rounding can move a point just below the edge
    # onto it: keep it inside (as ``image_points`` does).
    return float(min(np.float32(v), np.nextafter(np.float32(limit), np.float32(0))))


CRF_PARAM_RULES = {"iterations": "int in 0..100", "sxy_gaussian": "> 0", "compat_gaussian": ">= 0",
                   "sxy_bilateral": "> 0", "srgb": "> 0", "compat_bilateral": ">= 0"}
"""The keywords of ``ivos.dense_crf`` a bundle or predictor may set, and their ranges. Mean
field converges in 5-10 iterations; the cap of 100 keeps a bad card from stalling every click."""


def crf_params(name: str, params: Any) -> dict[str, Any]:
    """A dict of ``dense_crf`` keywords (see CRF_PARAM_RULES) with values in range."""
    if not isinstance(params, dict):
        raise InvalidInput(f"{name} must be a dict of dense_crf parameters, got {describe(params)}")
    out = {}
    for key, value in params.items():
        rule = CRF_PARAM_RULES.get(key)
        if rule is None:
            raise InvalidInput(f"{name} has an unknown key {key!r}; expected keys {list(CRF_PARAM_RULES)}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidInput(f"{name}[{key!r}] must be a number ({rule}), got {describe(value)}")
        if rule.startswith("int"):
            if not isinstance(value, (int, np.integer)) or not 0 <= value <= 100:
                raise InvalidInput(f"{name}[{key!r}] must be an integer in 0..100, got {value!r}")
            out[key] = int(value)
            continue
        v = float(value)
        if not math.isfinite(v) or v < 0 or (rule == "> 0" and v == 0):
            raise InvalidInput(f"{name}[{key!r}] must be a finite number {rule}, got {value!r}")
        out[key] = v
    return out


def finite_array(name: str, value: Any, *, dtype=np.float32, ndim: int | None = None) -> np.ndarray:
    """Converts to a C-contiguous array of ``dtype`` and checks it holds no NaN/inf."""
    try:
        arr = np.ascontiguousarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{name} must be numeric, got {describe(value)}") from None
    if ndim is not None and arr.ndim != ndim:
        raise InvalidInput(f"{name} must have {ndim} dimensions, got {describe(arr)}")
    if arr.size and not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{name} contains NaN or infinite values ({describe(arr)})")
    return arr


def binary_mask(name: str, mask: Any, height: int, width: int) -> np.ndarray:
    """A (height, width) mask given as uint8 0/1 or bool, returned as bool (no copy for bool)."""
    if not isinstance(mask, np.ndarray) or mask.shape != (height, width) or mask.dtype not in (np.uint8, np.bool_):
        raise InvalidInput(f"{name} must be a uint8 or bool array of shape ({height}, {width}), got {describe(mask)}")
    if mask.dtype == np.uint8 and mask.max(initial=0) > 1:
        raise InvalidInput(f"{name} must hold 0/1 values (uint8), got values up to {int(mask.max())}; "
                           f"pass {name} > 0 for a 0/255 mask")
    return mask.astype(bool, copy=False)
