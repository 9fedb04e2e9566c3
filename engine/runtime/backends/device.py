"""What every CUDA ``RunContext`` shares: host staging inputs, device buffers, a stream,
handing inputs over to device writers, fetching only some outputs.

One run (``DeviceRunContext._run``): queue the upload of every input still on the host, run
the network, queue the download of the fetched outputs, synchronise the stream once. The
backends supply those primitives (ORT and TensorRT through cuda-python: ``cudart.py``;
torch through its own tensors and streams: ``torch_backend.py``).
"""
from __future__ import annotations

from abc import abstractmethod

import numpy as np

from ...errors import InvalidInput
from .base import DeviceBuffer, RunContext


class DeviceRunContext(RunContext):
    """Base of the CUDA contexts. Subclasses call ``_init_buffers`` once, then implement
    ``_upload``, ``_execute``, ``_download``, ``_synchronize`` and ``_release``."""

    device = "cuda"

    def _init_buffers(self, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray],
                      device: dict[str, int], stream: int) -> None:
        """``inputs``/``outputs``: host arrays per tensor; ``device``: the device address of
        every input and output, each holding as many bytes as its host array; ``stream``: the
        context's ``cudaStream_t`` as int."""
        self.inputs = inputs
        self._init_outputs(outputs)
        self.stream = stream
        # The arrays uploaded by each run: the context's own, so an array a caller puts into
        # ``inputs`` in place of the bound one can never make an upload overrun its buffer.
        self._staged = dict(inputs)
        host = {**inputs, **outputs}
        self._buffers = {name: DeviceBuffer(ptr, host[name].shape, host[name].dtype, stream)
                         for name, ptr in device.items()}

    def _run(self, fetch: tuple[str, ...]) -> None:
        for name in self._staged:
            self._upload(name)
        self._execute()
        for name in fetch:
            self._download(name)
        self._synchronize()

    def device_input(self, name: str) -> DeviceBuffer:
        self._check_open()
        if name not in self._buffers or name in self.outputs:
            raise InvalidInput(f"device_input: {name!r} is not an input of this network; its inputs: "
                               f"{[n for n in self._buffers if n not in self.outputs]}")
        self._staged.pop(name, None)
        self.inputs.pop(name, None)
        return self._buffers[name]

    def device_output(self, name: str) -> DeviceBuffer:
        self._check_open()
        if name not in self.outputs:
            raise InvalidInput(f"device_output: {name!r} is not an output of this network; its outputs: "
                               f"{list(self.outputs)}")
        return self._buffers[name]

    @abstractmethod
    def _upload(self, name: str) -> None:
        """Queues the copy of the staged host input ``name`` to its device buffer on the stream."""

    @abstractmethod
    def _execute(self) -> None:
        """Runs the network on the device inputs after the work queued so far on the stream,
        writing every device output; later work on the stream must see its results."""

    @abstractmethod
    def _download(self, name: str) -> None:
        """Queues the copy of output ``name``'s device buffer into ``self.outputs[name]``."""

    @abstractmethod
    def _synchronize(self) -> None:
        """Waits for everything queued on the stream."""
