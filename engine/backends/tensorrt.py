"""TensorRT backend: runs a serialized plan built for this GPU (see ``ivos.export.tensorrt``).

Follows the TensorRT 10 Python API (named I/O tensors, ``execute_async_v3``); device memory
and streams come from cuda-python (``cuda.bindings.runtime``). Both are imported lazily: on
machines without them this module imports, and creating a runner raises
``BackendUnavailable`` naming the package to install.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..bundle import Bundle, TensorSpec
from ..errors import BackendUnavailable, ModelError
from .base import RunContext, Runner, allocate

log = logging.getLogger("ivos")


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailable("backend 'tensorrt' needs TensorRT: pip install tensorrt (NVIDIA's index) "
                                 "and 'ivos[gpu]' on a machine with an NVIDIA GPU") from None
    return tensorrt


def import_cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        raise BackendUnavailable("backend 'tensorrt' needs cuda-python: pip install 'ivos[gpu]'") from None
    return cudart


def check_cuda(result: tuple) -> Any:
    """Unpacks a cuda-python ``(err, *values)`` result, raising on error."""
    err, *values = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else tuple(values)


def current_compute_capability() -> str:
    """"sm_XY" of device 0 (BackendUnavailable without a GPU)."""
    cudart = import_cudart()
    try:
        prop = check_cuda(cudart.cudaGetDeviceProperties(0))
    except RuntimeError:
        raise BackendUnavailable("no CUDA device is visible") from None
    return f"sm_{prop.major}{prop.minor}"


def matching_plan(bundle: Bundle) -> tuple[Path, dict] | None:
    """The bundle's plan built for this GPU and TensorRT version, or None."""
    trt = import_tensorrt()
    cc = current_compute_capability()
    for entry in bundle.artifacts.get("tensorrt", []) or []:
        if entry.get("compute_capability") == cc and entry.get("tensorrt_version") == trt.__version__:
            path = bundle.path / entry["file"]
            if path.is_file():
                return path, entry
    return None


class TensorRTContext(RunContext):
    """An execution context with device buffers and a stream of its own."""

    def __init__(self, runner: "TensorRTRunner", inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        cudart = runner.cudart
        self._cudart = cudart
        self.inputs, self.outputs = inputs, outputs
        self._ctx = runner.engine.create_execution_context()
        self._stream = check_cuda(cudart.cudaStreamCreate())
        self._device: dict[str, int] = {}
        for name, buf in {**inputs, **outputs}.items():
            self._device[name] = check_cuda(cudart.cudaMalloc(buf.nbytes))
            self._ctx.set_tensor_address(name, self._device[name])
        for name, buf in inputs.items():
            self._ctx.set_input_shape(name, buf.shape)

    def run(self) -> dict[str, np.ndarray]:
        cudart = self._cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, buf in self.inputs.items():
            check_cuda(cudart.cudaMemcpyAsync(self._device[name], buf.ctypes.data, buf.nbytes, h2d, self._stream))
        if not self._ctx.execute_async_v3(self._stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for name, buf in self.outputs.items():
            check_cuda(cudart.cudaMemcpyAsync(buf.ctypes.data, self._device[name], buf.nbytes, d2h, self._stream))
        check_cuda(cudart.cudaStreamSynchronize(self._stream))
        return self.outputs

    def __del__(self):
        for ptr in getattr(self, "_device", {}).values():
            self._cudart.cudaFree(ptr)
        if getattr(self, "_stream", None) is not None:
            self._cudart.cudaStreamDestroy(self._stream)


class TensorRTRunner(Runner):
    """A deserialized TensorRT engine; each predictor gets its own execution context."""

    def __init__(self, plan_path: Path, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], *,
                 precision: str = "fp16"):
        super().__init__(inputs, outputs)
        self.precision = precision
        trt = import_tensorrt()
        self.cudart = import_cudart()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(plan_path.read_bytes())
        if self.engine is None:
            raise ModelError(f"{plan_path}: TensorRT could not deserialize the plan (built for another GPU "
                             "or TensorRT version?)")
        self.device = "cuda"
        self.name = f"tensorrt:{current_compute_capability()}"
        log.info("ivos: %s loaded %s", self.name, plan_path.name)

    def create_context(self, dims: Mapping[str, int] | None = None) -> TensorRTContext:
        dims = dims or {}
        return TensorRTContext(self, allocate(self.input_specs, dims), allocate(self.output_specs, dims))
