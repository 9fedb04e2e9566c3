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


def rgb_image(name: str, image: Any) -> np.ndarray:
    """An HxWx3 uint8 RGB image with H, W >= 1, returned C-contiguous (a copy only if needed)."""
    if not isinstance(image, np.ndarray):
        raise InvalidInput(f"{name} must be a numpy array of shape (H, W, 3) and dtype uint8, got {describe(image)}")
    if image.dtype != np.uint8:
        raise InvalidInput(f"{name} must have dtype uint8 (RGB 0..255), got {describe(image)}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInput(f"{name} must have shape (H, W, 3) (RGB), got {describe(image)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidInput(f"{name} is empty: {describe(image)}")
    return np.ascontiguousarray(image)


def finite_array(name: str, value: Any, *, dtype=np.float32, ndim: int | None = None) -> np.ndarray:
    """Converts to a C-contiguous array of ``dtype`` and checks it holds no NaN/inf."""
    try:
        arr = np.ascontiguousarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be numeric, got {describe(value)}") from None
    if ndim is not None and arr.ndim != ndim:
        raise InvalidInput(f"{name} must have {ndim} dimensions, got {describe(arr)}")
    if arr.size and not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{name} contains NaN or infinite values ({describe(arr)})")
    return arr
