"""Dispatch of ``render_clicks`` to the native ops in ``ivos._C`` (C++ CPU and CUDA).

Inputs arrive validated (see ``clicks.py``); this module only packs them into the flat
arrays the bindings take and maps "no CUDA" to ``BackendUnavailable``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import _C
from ..errors import BackendUnavailable, InvalidInput

_NO_CUDA_HINT = (
    "device='cuda' needs ivos built with the CUDA toolkit (nvcc; IVOS_CUDA=ON) and an NVIDIA GPU "
    "with a driver; use device='cpu' otherwise"
)


def _pack_strokes(strokes: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattens strokes for the bindings: points (P, 2) float32, offsets (S + 1,) int64 (stroke
    s is points[offsets[s]:offsets[s + 1]]), labels (S,) int32."""
    if not strokes:
        return np.zeros((0, 2), np.float32), np.zeros(1, np.int64), np.zeros(0, np.int32)
    points = np.concatenate([np.asarray(p, np.float32).reshape(-1, 2) for p, _ in strokes])
    offsets = np.zeros(len(strokes) + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p, _ in strokes])
    labels = np.array([label for _, label in strokes], np.int32)
    return points, offsets, labels


def _cuda_unavailable(err: Exception) -> BackendUnavailable:
    return BackendUnavailable(f"{_NO_CUDA_HINT} ({err})")


def render(
    height: int, width: int, clicks: np.ndarray, sigma: float,
    strokes: Sequence[tuple[np.ndarray, int]], out: np.ndarray | None, device: str,
) -> np.ndarray:
    """Renders into ``out`` (or a new (height, width) float32 array) with the C++ op for
    device "auto"/"cpu", or on the GPU with a copy back for "cuda"."""
    if out is None:
        # Uninitialised is fine: both ops overwrite every pixel. Recycled memory: a fresh
        # array would cost more in page faults than the rendering.
        out = _C.empty_image(height, width)
    click_arr = np.ascontiguousarray(clicks, np.float32).reshape(-1, 3)
    points, offsets, labels = _pack_strokes(strokes)
    if device == "cuda":
        try:
            _C.render_clicks_cuda_to_host(out, click_arr, points, offsets, labels, sigma)
        except _C.CudaUnavailableError as err:
            raise _cuda_unavailable(err) from None
    else:
        _C.render_clicks_cpu(out, click_arr, points, offsets, labels, sigma)
    return out


def render_into_device(
    device_ptr: int, height: int, width: int, clicks: np.ndarray, sigma: float,
    strokes: Sequence[tuple[np.ndarray, int]], stream: int,
) -> None:
    """Queues the CUDA kernel writing the float32 (height, width) channel at ``device_ptr``
    on ``stream`` (a ``cudaStream_t`` as int, 0 = legacy default stream)."""
    click_arr = np.ascontiguousarray(clicks, np.float32).reshape(-1, 3)
    points, offsets, labels = _pack_strokes(strokes)
    try:
        _C.render_clicks_cuda(device_ptr, height, width, click_arr, points, offsets, labels, sigma, stream)
    except _C.CudaUnavailableError as err:
        raise _cuda_unavailable(err) from None
    except ValueError as err:  # std::invalid_argument: the only unchecked input is the pointer
        raise InvalidInput(f"device_ptr 0x{device_ptr:x}: {err}") from None
