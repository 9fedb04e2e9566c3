"""PyTorch backend: the reference. Runs the bundle's ``torch.export`` program (``.pt2``)
eagerly, on the CPU or on CUDA when torch sees a GPU. Torch is imported only here."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import numpy as np

from ..bundle import TensorSpec
from ..errors import BackendUnavailable, ModelError
from .base import RunContext, Runner, allocate

log = logging.getLogger("ivos")


def _import_torch():
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("backend 'torch' needs PyTorch: pip install torch==2.13.0 'ivos[export]'") from None
    return torch


class TorchContext(RunContext):
    def __init__(self, runner: "TorchRunner", inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]):
        torch = runner.torch
        self._runner = runner
        self.inputs, self.outputs = inputs, outputs
        # Host tensors share memory with the numpy buffers: writing a buffer writes the tensor.
        self._host = {k: torch.from_numpy(v) for k, v in inputs.items()}
        self._out_host = {k: torch.from_numpy(v) for k, v in outputs.items()}
        self._dev = {k: t.to(runner.torch_device) for k, t in self._host.items()} if runner.device == "cuda" else self._host

    def run(self) -> dict[str, np.ndarray]:
        torch = self._runner.torch
        with torch.inference_mode():
            if self._dev is not self._host:
                for k, t in self._host.items():
                    self._dev[k].copy_(t, non_blocking=False)
            result = self._runner.module(*(self._dev[s.name] for s in self._runner.input_specs))
            if not isinstance(result, (tuple, list)):
                result = (result,)
            for spec, value in zip(self._runner.output_specs, result):
                self._out_host[spec.name].copy_(value)
        return self.outputs


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

    def create_context(self, dims: Mapping[str, int] | None = None) -> TorchContext:
        dims = dims or {}
        return TorchContext(self, allocate(self.input_specs, dims), allocate(self.output_specs, dims))
