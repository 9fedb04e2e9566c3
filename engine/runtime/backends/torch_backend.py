"""PyTorch backend: the reference. Runs the bundle's ``torch.export`` program (``.pt2``)
eagerly, on the CPU or on CUDA when torch sees a GPU. Torch is imported only here.

CPU: the input tensors share memory with the numpy buffers (writing a buffer writes the
tensor). CUDA: pinned host buffers, device tensors and a ``torch.cuda.Stream`` per context;
a run queues the uploads, the network, the copies into the context's device outputs (stable
addresses for ``device_output``) and the downloads of the fetched outputs on that stream,
then synchronises it once.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np

from ...errors import BackendUnavailable, ModelError
from ..bundle import TensorSpec
from .base import RunContext, Runner, allocate, concrete_shape
from .device import DeviceRunContext

log = logging.getLogger("ivos")


def _import_torch():
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("backend 'torch' needs PyTorch: pip install torch==2.13.0 'ivos[export]'") from None
    return torch


def _outputs_tuple(result) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


class TorchContext(RunContext):
    """CPU: the module reads tensors sharing the numpy input buffers; fetched outputs are
    copied into the numpy output buffers."""

    def __init__(self, runner: "TorchRunner", inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        torch = runner.torch
        self._torch, self._module = torch, runner.module
        self.inputs = inputs
        self._init_outputs(outputs)
        self._args = tuple(torch.from_numpy(inputs[s.name]) for s in runner.input_specs)
        self._out_names = tuple(s.name for s in runner.output_specs)
        self._out_host = {k: torch.from_numpy(v) for k, v in outputs.items()}

    def _run(self, fetch: tuple[str, ...]) -> None:
        with self._torch.inference_mode():
            result = dict(zip(self._out_names, _outputs_tuple(self._module(*self._args))))
            for name in fetch:
                self._out_host[name].copy_(result[name])

    def _release(self) -> None:
        self._args, self._module, self._out_host = (), None, {}


class TorchCudaContext(DeviceRunContext):
    """CUDA: see the module docstring."""

    def __init__(self, runner: "TorchRunner", dims: Mapping[str, int]):
        torch = runner.torch
        self._torch, self._module = torch, runner.module
        dev = runner.torch_device
        self._stream_obj = torch.cuda.Stream(device=dev)
        self._host_t: dict[str, object] = {}
        self._dev_t: dict[str, object] = {}
        host = {}
        for spec in (*runner.input_specs, *runner.output_specs):
            shape = concrete_shape(spec, dims)
            dtype = getattr(torch, spec.dtype)
            # Pinned host memory: the copies are real DMA, asynchronous to the host.
            self._host_t[spec.name] = torch.zeros(shape, dtype=dtype, pin_memory=True)
            self._dev_t[spec.name] = torch.zeros(shape, dtype=dtype, device=dev)
            host[spec.name] = self._host_t[spec.name].numpy()
        self._in_names = tuple(s.name for s in runner.input_specs)
        self._out_names = tuple(s.name for s in runner.output_specs)
        # The zero-filled device tensors were written on the current stream, not ours.
        self._stream_obj.wait_stream(torch.cuda.current_stream(dev))
        self._init_buffers({n: host[n] for n in self._in_names}, {n: host[n] for n in self._out_names},
                           {n: t.data_ptr() for n, t in self._dev_t.items()}, int(self._stream_obj.cuda_stream))

    def _upload(self, name: str) -> None:
        with self._torch.cuda.stream(self._stream_obj):
            self._dev_t[name].copy_(self._host_t[name], non_blocking=True)

    def _execute(self) -> None:
        torch = self._torch
        with torch.inference_mode(), torch.cuda.stream(self._stream_obj):
            result = _outputs_tuple(self._module(*(self._dev_t[n] for n in self._in_names)))
            for name, value in zip(self._out_names, result):
                self._dev_t[name].copy_(value)

    def _download(self, name: str) -> None:
        with self._torch.cuda.stream(self._stream_obj):
            self._host_t[name].copy_(self._dev_t[name], non_blocking=True)

    def _synchronize(self) -> None:
        self._stream_obj.synchronize()

    def _release(self) -> None:
        # The caching allocator takes the memory back once nothing references the tensors.
        self._dev_t, self._host_t = {}, {}
        self._buffers, self._module, self._stream_obj = {}, None, None


class TorchRunner(Runner):
    """A loaded ``torch.export`` program. Forward is stateless, so one module serves threads."""

    def __init__(self, pt2_path: Path, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], *,
                 device: str = "cpu", threads: int = 0):
        super().__init__(inputs, outputs)
        torch = _import_torch()
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("torch sees no CUDA device: install a CUDA build of torch on a GPU machine")
        if threads > 0:
            torch.set_num_threads(threads)
        self.torch = torch
        self.torch_device = torch.device(device)
        try:
            program = torch.export.load(str(pt2_path))
            module = program.module()
        except MemoryError:
            raise
        except Exception as e:  # a corrupt/truncated archive raises zipfile, pickle or torch errors
            raise ModelError(f"{pt2_path.parent / 'model.json'}: field artifacts.torch names {pt2_path.name}, which "
                             f"torch.export.load cannot load ({type(e).__name__}: {str(e)[:300]}); re-export the "
                             "bundle") from None
        self.module = module.to(self.torch_device)
        self.device = device
        self.name = f"torch:{device}"
        log.info("ivos: %s loaded %s", self.name, pt2_path.name)

    def _create_context(self, dims: Mapping[str, int]) -> RunContext:
        if self.device == "cuda":
            return TorchCudaContext(self, dims)
        return TorchContext(self, allocate(self.input_specs, dims), allocate(self.output_specs, dims))

    def _release(self) -> None:
        self.module = None
