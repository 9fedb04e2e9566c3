"""ONNX Runtime backend: CPU EP, or CUDA EP when onnxruntime-gpu is installed.

Buffers are bound once with IOBinding to host memory, so a run allocates nothing; with the
CUDA EP, ORT copies the bound host inputs to the device and the outputs back.
ORT silently falls back to the CPU when a provider cannot load: ``name`` reports the
provider the session actually got, and ``device="cuda"`` raises if CUDA did not load.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np

from ..bundle import TensorSpec
from ..errors import BackendUnavailable
from .base import RunContext, Runner, allocate

log = logging.getLogger("ivos")


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable(
            "backend 'ort' needs ONNX Runtime: pip install 'ivos[cpu]' (or 'ivos[gpu]' for CUDA)") from None
    return onnxruntime


def ort_cuda_available() -> bool:
    """Whether the installed ONNX Runtime build offers the CUDA execution provider."""
    try:
        return "CUDAExecutionProvider" in _import_ort().get_available_providers()
    except BackendUnavailable:
        return False


class OrtContext(RunContext):
    def __init__(self, session, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        self._session = session
        self.inputs, self.outputs = inputs, outputs
        self._binding = session.io_binding()
        for name, buf in inputs.items():
            self._binding.bind_input(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
        for name, buf in outputs.items():
            self._binding.bind_output(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)

    def run(self) -> dict[str, np.ndarray]:
        self._session.run_with_iobinding(self._binding)
        return self.outputs


class OrtRunner(Runner):
    """An ``onnxruntime.InferenceSession`` (thread-safe ``run``) over one ONNX file."""

    def __init__(self, onnx_path: Path, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], *,
                 device: str = "cpu", threads: int = 0, precision: str = "fp32"):
        super().__init__(inputs, outputs)
        ort = _import_ort()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads  # 0 = one per physical core
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if not ort_cuda_available():
                raise BackendUnavailable("ONNX Runtime has no CUDA provider here: pip install 'ivos[gpu]' "
                                         "(and uninstall onnxruntime) on a machine with an NVIDIA GPU")
            providers.insert(0, "CUDAExecutionProvider")
        self._session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        actual = self._session.get_providers()
        if device == "cuda" and actual[0] != "CUDAExecutionProvider":
            raise BackendUnavailable(f"ONNX Runtime could not start the CUDA provider (got {actual}); "
                                     "check the CUDA/cuDNN libraries onnxruntime-gpu needs")
        self.device = device
        self.precision = precision
        self.name = f"onnxruntime:{actual[0]}" + (":int8" if precision == "int8" else "")
        log.info("ivos: %s loaded %s", self.name, onnx_path.name)

    def create_context(self, dims: Mapping[str, int] | None = None) -> OrtContext:
        dims = dims or {}
        return OrtContext(self._session, allocate(self.input_specs, dims), allocate(self.output_specs, dims))
