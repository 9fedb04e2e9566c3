"""TensorRT backend: runs a serialized plan built for this GPU (see ``ivos.export.tensorrt``).

Follows the TensorRT 10 Python API (named I/O tensors, ``execute_async_v3``); device memory
and streams come from cuda-python (``cudart.py``). Both are imported lazily: on machines
without them this module imports, and creating a runner raises ``BackendUnavailable``
naming the package to install. Each context runs on its own stream, so a kernel queued on
``ctx.stream`` (the click rendering into ``ctx.device_input("clicks")``) is ordered before
the network without a host synchronisation.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np

from ...errors import BackendUnavailable, ModelError
from ..bundle import Bundle, TensorSpec
from .base import Runner, allocate
from .cudart import CudartRunContext, check_cuda, import_cudart

log = logging.getLogger("ivos")


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailable("backend 'tensorrt' needs TensorRT: pip install tensorrt (NVIDIA's index) "
                                 "and 'ivos[gpu]' on a machine with an NVIDIA GPU") from None
    return tensorrt


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


class TensorRTContext(CudartRunContext):
    """An execution context with device buffers and a stream of its own."""

    def __init__(self, runner: "TensorRTRunner", inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        self._engine = runner.engine  # the execution context needs it alive, even after runner.close()
        self._ctx = self._engine.create_execution_context()
        self._allocate(runner.cudart, inputs, outputs)
        for name, buf in self._buffers.items():
            self._ctx.set_tensor_address(name, buf.ptr)
        for name, host in inputs.items():
            self._ctx.set_input_shape(name, host.shape)

    def _execute(self) -> None:
        if not self._ctx.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")

    def _release(self) -> None:
        self._ctx = None  # TensorRT's context before the memory it points at
        self._engine = None
        super()._release()


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

    def _release(self) -> None:
        self.engine = None

    def _create_context(self, dims: Mapping[str, int]) -> TensorRTContext:
        return TensorRTContext(self, allocate(self.input_specs, dims), allocate(self.output_specs, dims))
