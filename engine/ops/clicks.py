"""Click encoding: positive/negative clicks and strokes rendered as +/- Gaussians into ONE
float32 channel (the paper's encoding, section 2.1).

Semantics (shared by the numpy reference, the C++ CPU op and the CUDA kernel):

* Coordinates are ``(x, y)`` in pixels: x is the column, y the row, and pixel ``(row i,
  col j)`` has its centre at ``x = j, y = i``. Clicks may lie outside the image; only the
  part of their Gaussian that falls inside is drawn.
* A click at ``c`` with label 1 (positive) adds, with label 0 (negative) subtracts
  ``g(|p - c|)`` at every pixel centre ``p``; a stroke (polyline) does the same with the
  distance from ``p`` to the polyline (a "Gaussian tube"). A stroke is added once however
  many segments it has.
* ``g`` is a Gaussian of std ``sigma`` truncated at ``TRUNCATE * sigma`` and shifted so it
  reaches 0 continuously there: ``g(d) = (exp(-d^2 / 2 sigma^2) - e) / (1 - e)`` for
  ``d < TRUNCATE * sigma`` and 0 beyond, with ``e = exp(-TRUNCATE^2 / 2)``. The peak stays
  1; being continuous, the cut-off cannot make implementations disagree by rounding.
* Overlaps are summed, then the channel is clipped to ``[-1, 1]``: two positive clicks side
  by side saturate at 1 instead of reaching 2, so the network only ever sees values in the
  range it was trained on.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .._validate import describe, finite_array, positive_float, positive_int
from ..errors import InvalidInput

TRUNCATE = 4.0
"""Gaussians are evaluated within ``TRUNCATE * sigma`` of the click or stroke."""

_DEVICES = ("auto", "cpu", "numpy", "cuda")


def _truncated_gaussian(dist2: np.ndarray, sigma: float) -> np.ndarray:
    """g(d) from the module docstring, evaluated on squared distances (float64)."""
    floor = math.exp(-0.5 * TRUNCATE**2)
    g = (np.exp(-dist2 / (2.0 * sigma * sigma)) - floor) / (1.0 - floor)
    return np.where(dist2 < (TRUNCATE * sigma) ** 2, g, 0.0)


def _window(center_lo: float, center_hi: float, radius: float, size: int) -> tuple[int, int]:
    """Index range [lo, hi) of pixel centres within ``radius`` of [center_lo, center_hi]."""
    lo = max(0, math.ceil(center_lo - radius))
    hi = min(size, math.floor(center_hi + radius) + 1)
    return lo, hi


def segment_dist2(px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distance from points (px, py) (broadcast) to the segment a-b (float64)."""
    d = b - a
    len2 = float(d @ d)
    if len2 == 0.0:
        return (px - a[0]) ** 2 + (py - a[1]) ** 2
    t = np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / len2, 0.0, 1.0)
    return (px - (a[0] + t * d[0])) ** 2 + (py - (a[1] + t * d[1])) ** 2


def render_clicks_numpy(
    height: int, width: int, clicks: np.ndarray, sigma: float,
    strokes: Sequence[tuple[np.ndarray, int]] = (),
) -> np.ndarray:
    """Reference implementation (float64 math, float32 result). Inputs already validated:
    ``clicks`` (N, 3) float (x, y, label), ``strokes`` list of ((M, 2) float, label)."""
    acc = np.zeros((height, width), np.float64)
    radius = TRUNCATE * sigma
    for x, y, label in clicks:
        x0, x1 = _window(x, x, radius, width)
        y0, y1 = _window(y, y, radius, height)
        if x0 >= x1 or y0 >= y1:
            continue
        px = np.arange(x0, x1, dtype=np.float64)[None, :]
        py = np.arange(y0, y1, dtype=np.float64)[:, None]
        sign = 1.0 if label > 0.5 else -1.0
        acc[y0:y1, x0:x1] += sign * _truncated_gaussian((px - x) ** 2 + (py - y) ** 2, sigma)
    for points, label in strokes:
        pts = np.asarray(points, np.float64)
        x0, x1 = _window(pts[:, 0].min(), pts[:, 0].max(), radius, width)
        y0, y1 = _window(pts[:, 1].min(), pts[:, 1].max(), radius, height)
        if x0 >= x1 or y0 >= y1:
            continue
        px = np.arange(x0, x1, dtype=np.float64)[None, :]
        py = np.arange(y0, y1, dtype=np.float64)[:, None]
        dist2 = np.full((y1 - y0, x1 - x0), np.inf)
        ends = pts[1:] if len(pts) > 1 else pts
        for a, b in zip(pts, ends):
            np.minimum(dist2, segment_dist2(px, py, a, b), out=dist2)
        sign = 1.0 if label > 0.5 else -1.0
        acc[y0:y1, x0:x1] += sign * _truncated_gaussian(dist2, sigma)
    return np.clip(acc, -1.0, 1.0).astype(np.float32)


def _check_clicks(clicks: Any) -> np.ndarray:
    if clicks is None:
        return np.zeros((0, 3), np.float32)
    arr = finite_array("clicks", clicks, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 3), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InvalidInput(f"clicks must have shape (N, 3) holding (x, y, label), got {describe(arr)}")
    labels = arr[:, 2]
    if not np.all((labels == 0) | (labels == 1)):
        raise InvalidInput(f"clicks[:, 2] (labels) must be 1 (positive) or 0 (negative), got {np.unique(labels)[:5]}")
    return arr


def _check_strokes(strokes: Any) -> list[tuple[np.ndarray, int]]:
    if strokes is None:
        return []
    checked = []
    for i, item in enumerate(strokes):
        try:
            points, label = item
        except (TypeError, ValueError):
            raise InvalidInput(f"strokes[{i}] must be a (points, label) pair, got {describe(item)}") from None
        pts = finite_array(f"strokes[{i}] points", points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] == 0:
            raise InvalidInput(f"strokes[{i}] points must have shape (M>=1, 2) holding (x, y), got {describe(pts)}")
        if label not in (0, 1):
            raise InvalidInput(f"strokes[{i}] label must be 1 (positive) or 0 (negative), got {label!r}")
        checked.append((pts, int(label)))
    return checked


def _check_out(out: Any, height: int, width: int) -> np.ndarray:
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (height, width) \
            or not out.flags.c_contiguous or not out.flags.writeable:
        raise InvalidInput(
            f"out must be a writeable C-contiguous float32 array of shape ({height}, {width}), got {describe(out)}")
    return out


def _check_common(height: Any, width: Any, clicks: Any, sigma: Any, strokes: Any):
    """Validates the arguments render_clicks and render_clicks_cuda share."""
    return (positive_int("height", height), positive_int("width", width),
            positive_float("sigma", sigma), _check_clicks(clicks), _check_strokes(strokes))


def render_clicks(
    height: int,
    width: int,
    clicks: Any,
    *,
    sigma: float,
    strokes: Sequence[tuple[Any, int]] | None = None,
    out: np.ndarray | None = None,
    device: str = "auto",
) -> np.ndarray:
    """Renders clicks and strokes as +/- truncated Gaussians into one HxW float32 channel.

    Args:
        height, width: size of the channel in pixels (>= 1).
        clicks: (N, 3) array-like of ``(x, y, label)``; x, y in pixels (may be outside the
            image), label 1 = positive (adds), 0 = negative (subtracts). N may be 0.
        sigma: Gaussian standard deviation in pixels (> 0).
        strokes: optional sequence of ``(points, label)``, points an (M, 2) array of (x, y)
            polyline vertices (M = 1 is a dot), drawn as Gaussian tubes.
        out: optional float32 C-contiguous (height, width) array, overwritten in full.
        device: "auto" (the native C++ op), "cpu" (same), "numpy" (the reference) or
            "cuda" (the CUDA kernel, result copied back; raises ``BackendUnavailable`` where
            there is no GPU). To write into a device buffer use ``render_clicks_cuda``.

    Returns:
        The (height, width) float32 channel in [-1, 1] (``out`` when given). See the module
        docstring for the exact overlap and coordinate semantics.
    """
    height, width, sigma, click_arr, stroke_list = _check_common(height, width, clicks, sigma, strokes)
    if device not in _DEVICES:
        raise InvalidInput(f"device must be one of {_DEVICES}, got {device!r}")
    if out is not None:
        _check_out(out, height, width)
    if device == "numpy":
        result = render_clicks_numpy(height, width, click_arr, sigma, stroke_list)
        if out is None:
            return result
        out[...] = result
        return out
    from . import _native_clicks

    return _native_clicks.render(height, width, click_arr, sigma, stroke_list, out, device)


def _device_target(device_ptr: Any, height: int, width: int) -> tuple[int, int | None]:
    """(address, the buffer's own stream or None) of ``render_clicks_cuda``'s target: an int
    address, or an object exposing ``__cuda_array_interface__`` whose dtype, shape and
    layout must fit a float32 C-contiguous (height, width) plane."""
    cai = getattr(device_ptr, "__cuda_array_interface__", None)
    if cai is None:
        if isinstance(device_ptr, bool) or not isinstance(device_ptr, (int, np.integer)) or device_ptr < 0:
            raise InvalidInput("device_ptr must be a non-negative integer address or a CUDA array "
                               f"(__cuda_array_interface__, e.g. ctx.device_input(name)), got {describe(device_ptr)}")
        return int(device_ptr), None
    shape, typestr = tuple(cai["shape"]), cai["typestr"]
    if typestr != "<f4":
        raise InvalidInput(f"device_ptr must hold float32 values, got a CUDA array of type {typestr!r}")
    if shape[-2:] != (height, width) or any(d != 1 for d in shape[:-2]):
        raise InvalidInput(f"device_ptr must be a ({height}, {width}) plane (leading dims of size 1 allowed), "
                           f"got a CUDA array of shape {shape}")
    strides = cai.get("strides")
    if strides is not None and tuple(strides[-2:]) != (4 * width, 4):
        raise InvalidInput(f"device_ptr must be C-contiguous, got a CUDA array with strides {tuple(strides)}")
    ptr, read_only = cai["data"]
    if read_only:
        raise InvalidInput("device_ptr is a read-only CUDA array")
    return int(ptr), cai.get("stream")


def render_clicks_cuda(
    device_ptr: Any,
    height: int,
    width: int,
    clicks: Any,
    *,
    sigma: float,
    strokes: Sequence[tuple[Any, int]] | None = None,
    stream: int | None = None,
) -> None:
    """Renders like ``render_clicks`` straight into a caller-owned CUDA device buffer, on the
    calling thread's current CUDA device (the buffer must live there).

    Args:
        device_ptr: the float32 C-contiguous (height, width) device buffer, overwritten in
            full: either an object exposing ``__cuda_array_interface__`` (a network input from
            ``ctx.device_input(name)``, shape e.g. (1, 1, height, width); a torch CUDA tensor),
            whose dtype, shape and layout are checked, or a bare address (int), e.g.
            ``torch_tensor.data_ptr()``, whose size cannot be checked: it must hold
            height * width float32 values.
        height, width, clicks, sigma, strokes: as in ``render_clicks``.
        stream: the ``cudaStream_t`` (as int) to queue the work on; None (default): the
            buffer's own stream (``DeviceBuffer.stream``: the context's, so the next
            ``ctx.run()`` sees the clicks), else 0, the legacy default stream. The call is
            asynchronous: synchronise the stream before reading the buffer.

    Raises:
        InvalidInput: bad arguments, or ``device_ptr`` is not device memory.
        BackendUnavailable: ivos was built without CUDA, or there is no GPU/driver.
    """
    height, width, sigma, click_arr, stroke_list = _check_common(height, width, clicks, sigma, strokes)
    ptr, own_stream = _device_target(device_ptr, height, width)
    if stream is None:
        stream = own_stream or 0
    if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or stream < 0:
        raise InvalidInput(f"stream must be a non-negative integer (a cudaStream_t) or None, got {describe(stream)}")
    if ptr == 0:
        raise InvalidInput("device_ptr must be a device address, got 0 (a null pointer)")
    from . import _native_clicks

    _native_clicks.render_into_device(ptr, height, width, click_arr, sigma, stroke_list, int(stream))
