"""ONNX Runtime backend: CPU EP, or CUDA EP when onnxruntime-gpu is installed.

Buffers are bound once with IOBinding, so a run allocates nothing: on the CPU to the host
arrays themselves; with the CUDA EP to device buffers of the context's own (cuda-python),
which the context fills from its host inputs (or a kernel fills, see ``device_input``) and
from which it copies back only the fetched outputs.
ORT silently falls back to the CPU when a provider cannot load: ``name`` reports the
provider the session actually got, and ``device="cuda"`` raises if CUDA did not load.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ...errors import BackendUnavailable, ModelError
from ..bundle import TensorSpec
from .base import RunContext, Runner, allocate, check_io
from .cudart import CudartRunContext, import_cudart

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


def no_cuda_provider_message() -> str:
    """Why ORT cannot run on CUDA here, for an installed ONNX Runtime without the CUDA EP."""
    ort = _import_ort()
    return (f"the installed onnxruntime {getattr(ort, '__version__', '?')} has no CUDAExecutionProvider "
            f"(its providers: {', '.join(ort.get_available_providers())}): it is the CPU build. For CUDA, "
            "install onnxruntime-gpu instead of onnxruntime (pip uninstall onnxruntime && pip install "
            "'ivos[gpu]'); never both, the two packages overwrite each other")


# ONNX Runtime's element types (NodeArg.type) as TensorSpec dtypes.
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
               "tensor(uint8)": "uint8"}


class OrtContext(RunContext):
    """CPU provider: inputs and outputs bound to the host arrays (ORT writes every output)."""

    def __init__(self, session, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        self._session = session
        self.inputs = inputs
        self._init_outputs(outputs)
        self._binding = session.io_binding()
        for name, buf in inputs.items():
            self._binding.bind_input(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
        for name, buf in outputs.items():
            self._binding.bind_output(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)

    def _run(self, fetch: tuple[str, ...]) -> None:
        self._session.run_with_iobinding(self._binding)

    def _release(self) -> None:
        self._binding = self._session = None


class OrtCudaContext(CudartRunContext):
    """CUDA provider: inputs and outputs bound to device buffers of this context. ORT runs on
    a stream of its own, so ``_execute`` first waits for this context's stream (the uploads
    and any kernel queued there), and waits for ORT's outputs before the downloads."""

    def __init__(self, session, cudart, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        self._session = session
        self._allocate(cudart, inputs, outputs)
        self._binding = session.io_binding()
        for name, buf in self._buffers.items():
            bind = self._binding.bind_output if name in outputs else self._binding.bind_input
            bind(name, "cuda", 0, buf.dtype, list(buf.shape), buf.ptr)

    def _execute(self) -> None:
        self._synchronize()
        self._session.run_with_iobinding(self._binding)
        self._binding.synchronize_outputs()  # the downloads run on another stream than ORT's

    def _release(self) -> None:
        self._binding = self._session = None
        super()._release()


class OrtRunner(Runner):
    """An ``onnxruntime.InferenceSession`` (thread-safe ``run``) over one ONNX file."""

    def __init__(self, onnx_path: Path, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], *,
                 device: str = "cpu", threads: int = 0, precision: str = "fp32", card: Path | None = None,
                 artifact: str = "onnx"):
        """Raises ModelError naming ``card`` (default: ``model.json`` next to the file) and
        ``artifacts.<artifact>`` when ONNX Runtime cannot load the file, or when the graph's
        inputs/outputs differ from ``inputs``/``outputs``."""
        super().__init__(inputs, outputs)
        card = onnx_path.parent / "model.json" if card is None else card
        ort = _import_ort()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads  # 0 = one per physical core
        # Spinning: ORT's pool threads busy-wait for work after each run. It saves microseconds
        # on an idle machine and steals whole cores from torch, our native ops and other
        # processes on a busy one (benchmarks/results/threads.md), so it is off by default.
        opts.add_session_config_entry("session.intra_op.allow_spinning", os.environ.get("IVOS_ORT_SPINNING", "0"))
        # ORT's fast uint8 x int8 kernels saturate on x86 CPUs without VNNI unless the weights
        # are on 7 bits (what ``ivos-export int8`` writes); for an int8 graph with 8-bit weights,
        # IVOS_ORT_EXACT_INT8=1 makes ORT take its exact (slower) uint8 x uint8 kernels there.
        opts.add_session_config_entry("session.x64quantprecision", os.environ.get("IVOS_ORT_EXACT_INT8", "0"))
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if not ort_cuda_available():
                raise BackendUnavailable(f"device 'cuda' with backend 'ort': {no_cuda_provider_message()}")
            providers.insert(0, "CUDAExecutionProvider")
            self._cudart = import_cudart()  # device buffers: fail here, not at the first context
        try:
            self._session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        except MemoryError:
            raise
        except Exception as e:  # onnxruntime's own types (InvalidProtobuf, Fail, ...) derive from Exception
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ModelError(f"{card}: field artifacts.{artifact} names {onnx_path.name}, which ONNX Runtime "
                             f"cannot load ({type(e).__name__}: {reason[:300]}); the file is corrupt, truncated "
                             "or not an ONNX model: re-export or re-download the bundle") from None
        session = self._session
        check_io(card, onnx_path, "inputs", inputs,
                 [(a.name, a.shape, _ORT_DTYPES.get(a.type, a.type)) for a in session.get_inputs()])
        check_io(card, onnx_path, "outputs", outputs,
                 [(a.name, a.shape, _ORT_DTYPES.get(a.type, a.type)) for a in session.get_outputs()])
        actual = self._session.get_providers()
        if device == "cuda" and actual[0] != "CUDAExecutionProvider":
            raise BackendUnavailable(f"ONNX Runtime could not start the CUDA provider (got {actual}); "
                                     "check the CUDA/cuDNN libraries onnxruntime-gpu needs")
        self.device = device
        self.precision = precision
        self.name = f"onnxruntime:{actual[0]}" + (":int8" if precision == "int8" else "")
        log.info("ivos: %s loaded %s", self.name, onnx_path.name)

    def _create_context(self, dims: Mapping[str, int]) -> RunContext:
        inputs, outputs = allocate(self.input_specs, dims), allocate(self.output_specs, dims)
        if self.device == "cuda":
            return OrtCudaContext(self._session, self._cudart, inputs, outputs)
        return OrtContext(self._session, inputs, outputs)

    def _release(self) -> None:
        self._session = None
