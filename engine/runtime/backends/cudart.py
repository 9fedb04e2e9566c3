"""The CUDA runtime through cuda-python (``cuda.bindings.runtime``), for the contexts whose
framework takes raw device pointers (TensorRT, ONNX Runtime's CUDA provider): device memory,
a stream, copies. Imported lazily by those backends; ``import_cudart`` raises
``BackendUnavailable`` naming the package where cuda-python is missing.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ...errors import BackendUnavailable
from .device import DeviceRunContext


def import_cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        raise BackendUnavailable("device buffers for TensorRT and ONNX Runtime CUDA need cuda-python: "
                                 "pip install 'ivos[gpu]'") from None
    return cudart


def check_cuda(result: tuple) -> Any:
    """Unpacks a cuda-python ``(err, *values)`` result, raising RuntimeError naming the error."""
    err, *values = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _free(cudart, ptrs: list[int], stream) -> None:
    """Frees a context's device memory and stream (its finalizer: runs once)."""
    for ptr in ptrs:
        cudart.cudaFree(ptr)
    if stream is not None:
        cudart.cudaStreamDestroy(stream)


class CudartRunContext(DeviceRunContext):
    """A CUDA context whose device buffers and stream come from cuda-python. Subclasses
    call ``_allocate`` once and implement ``_execute``."""

    def _allocate(self, cudart, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
        """Zeroed device buffers as large as the host arrays, plus a non-blocking stream (no
        implicit ordering with the legacy default stream). Freed by ``close()`` or, as a
        safety net, when the context is garbage collected."""
        self._cudart = cudart
        ptrs: list[int] = []
        self._stream_obj = check_cuda(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking))
        self._finalizer = weakref.finalize(self, _free, cudart, ptrs, self._stream_obj)
        device = {}
        for name, host in {**inputs, **outputs}.items():
            ptr = int(check_cuda(cudart.cudaMalloc(max(host.nbytes, 1))))
            ptrs.append(ptr)
            check_cuda(cudart.cudaMemset(ptr, 0, host.nbytes))
            device[name] = ptr
        self._h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._init_buffers(inputs, outputs, device, int(self._stream_obj))

    def _upload(self, name: str) -> None:
        host = self._staged[name]
        check_cuda(self._cudart.cudaMemcpyAsync(self._buffers[name].ptr, host.ctypes.data, host.nbytes, self._h2d,
                                                self._stream_obj))

    def _download(self, name: str) -> None:
        host = self.outputs[name]
        check_cuda(self._cudart.cudaMemcpyAsync(host.ctypes.data, self._buffers[name].ptr, host.nbytes, self._d2h,
                                                self._stream_obj))

    def _synchronize(self) -> None:
        check_cuda(self._cudart.cudaStreamSynchronize(self._stream_obj))

    def _release(self) -> None:
        self._finalizer()
