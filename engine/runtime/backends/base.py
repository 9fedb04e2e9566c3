"""The one runner interface every backend implements (after Polygraphy's runners).

A ``Runner`` is a loaded network: created once per model, thread-safe, shared. Each
predictor asks it for its own ``RunContext``: the input and output buffers, allocated and
bound once, and on CUDA a stream of its own. A context is not thread-safe; one per thread.

Host path (every backend, and the only one on the CPU): the predictor writes inputs in place
(``ctx.inputs[name][...] = ...`` or an op writing straight into the buffer) and calls
``ctx.run()``, which returns the host output buffers (reused by the next run: copy what you
keep). ``ctx.run(fetch=("logits",))`` returns only the named outputs; on CUDA the others stay
in device memory and are never copied back.

Device path (contexts with ``device == "cuda"``): ``ctx.device_input(name)`` hands over an
input's device buffer (a ``DeviceBuffer``: address, shape, dtype, the context's stream) for a
kernel to write, e.g. ``ivos.render_clicks_cuda(buf, h, w, clicks, sigma=s,
stream=ctx.stream)``; from then on that input is no longer in ``ctx.inputs`` and ``run()``
never uploads it. Work queued on ``ctx.stream`` is finished before the network reads it.
``ctx.device_output(name)`` gives an output's device buffer (valid after ``run()``).

Lifetime: ``ctx.close()`` (or ``with runner.create_context() as ctx:``) frees the context's
buffers and stream at once; a context that is never closed is freed when it is garbage
collected. Closing twice is harmless; using a closed context raises ``InvalidInput``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..._validate import describe
from ...errors import InvalidInput, ModelError
from ..bundle import TensorSpec

_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "uint8": np.uint8}


def concrete_shape(spec: TensorSpec, dims: Mapping[str, int]) -> tuple[int, ...]:
    """The spec's shape with named dynamic dims replaced from ``dims``."""
    shape = []
    for d in spec.shape:
        if isinstance(d, int):
            shape.append(d)
        elif d in dims:
            shape.append(int(dims[d]))
        else:
            raise InvalidInput(f"dims must give a size for the dynamic dimension {d!r} of {spec.name!r}")
    return tuple(shape)


def check_io(card: Path, network: Path, kind: str, specs: tuple[TensorSpec, ...],
             actual: Sequence[tuple[str, Sequence[Any], str]]) -> None:
    """Raises ModelError naming ``card``'s field when the network's ``kind`` ("inputs" or
    "outputs") differ from the card's ``specs``: names (as a set), rank, static sizes (a
    dynamic dim, a string or None in ``actual``, matches any size) and dtypes.

    ``actual``: (name, shape, dtype name as in TensorSpec, or the framework's own name when
    it has no equivalent) per tensor of the network file ``network``."""
    got = {name: (tuple(shape), dtype) for name, shape, dtype in actual}
    if set(got) != {s.name for s in specs}:
        raise ModelError(f"{card}: field {kind!r} names {[s.name for s in specs]}, but the network {network.name} "
                         f"has the {kind} {sorted(got)}")
    for i, spec in enumerate(specs):
        shape, dtype = got[spec.name]
        static = [d if isinstance(d, int) and not isinstance(d, bool) and d >= 0 else None for d in shape]
        if len(shape) != len(spec.shape) or any(
                isinstance(want, int) and have is not None and want != have for want, have in zip(spec.shape, static)):
            shown = [d if d is not None else "?" for d in static]
            raise ModelError(f"{card}: field {kind}[{i}].shape ({spec.name!r}) is {list(spec.shape)}, but the network "
                             f"{network.name} has {shown}: the card does not describe this network (re-export the "
                             "bundle, or fix the card)")
        if dtype != spec.dtype:
            raise ModelError(f"{card}: field {kind}[{i}].dtype ({spec.name!r}) is {spec.dtype!r}, but the network "
                             f"{network.name} has {dtype!r}")


def allocate(specs: tuple[TensorSpec, ...], dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Zeroed, C-contiguous host buffers for ``specs``."""
    return {s.name: np.zeros(concrete_shape(s, dims), _NP_DTYPES[s.dtype]) for s in specs}


@dataclass(frozen=True)
class DeviceBuffer:
    """A C-contiguous tensor in CUDA device memory, owned by a ``RunContext`` (valid until the
    context closes).

    Attributes:
        ptr: device address (int).
        shape: the tensor's shape, e.g. (1, 1, 320, 320).
        dtype: numpy dtype of the elements (float32 for every ivos network input so far).
        stream: the owning context's ``cudaStream_t`` as int: queue work that writes or reads
            the buffer there, so it is ordered with the context's runs (0: the legacy default
            stream).
    """

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    stream: int = 0

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """Lets torch (``torch.as_tensor(buf, device="cuda")``), CuPy and Numba view the buffer
        without a copy. ``stream`` tells them which stream to wait on (None: none)."""
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "version": 3,
                "strides": None, "stream": self.stream or None}


class Closable:
    """``close()`` (idempotent; the subclass frees what it holds in ``_release``, called once),
    ``closed`` and the context manager's exit. A context frees its buffers and stream; a
    runner drops its framework objects and refuses new contexts."""

    _closed: bool = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Frees what the backend allocated (called once, by ``close``)."""

    @property
    def closed(self) -> bool:
        return self._closed

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class RunContext(Closable, ABC):
    """Per-predictor bound buffers of one runner (and, on CUDA, a stream). Not thread-safe.

    Attributes:
        inputs: name -> writable C-contiguous host array the next ``run`` reads (less the
            inputs handed to the device with ``device_input``).
        outputs: name -> host array ``run`` writes (the fetched ones; reused by every run).
        device: "cpu" or "cuda".
        stream: this context's ``cudaStream_t`` as int (0 on the CPU).
    """

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    device: str = "cpu"
    stream: int = 0

    def run(self, fetch: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Runs the network on the current inputs and returns host outputs (reused buffers).

        Args:
            fetch: names of the outputs to bring back to the host, e.g. ``("logits",)``; None
                (default) brings back all and returns ``self.outputs`` itself. Outputs not
                fetched keep their previous host values; on CUDA they stay on the device
                (``device_output``), on the CPU they are computed anyway.

        Returns:
            name -> host array for the fetched outputs.
        """
        self._check_open()
        if fetch is None:
            self._run(self._all_outputs)
            return self.outputs
        names = self._fetch_names(fetch)
        self._run(names)
        return {name: self.outputs[name] for name in names}

    @abstractmethod
    def _run(self, fetch: tuple[str, ...]) -> None:
        """Runs the network and fills ``self.outputs[name]`` for each name in ``fetch``."""

    def device_input(self, name: str) -> DeviceBuffer:
        """The device buffer of input ``name``, for a kernel to write (see the module
        docstring). Removes ``name`` from ``inputs``: ``run`` no longer uploads it. Calling it
        again returns the same buffer. InvalidInput on a CPU context (write ``inputs[name]``)."""
        raise InvalidInput(f"device_input({name!r}): this context runs on the CPU; write ctx.inputs[{name!r}] "
                           "instead (device buffers exist on contexts with device 'cuda')")

    def device_output(self, name: str) -> DeviceBuffer:
        """The device buffer output ``name`` is written to by ``run`` (CUDA contexts only)."""
        raise InvalidInput(f"device_output({name!r}): this context runs on the CPU; read the arrays run() returns "
                           "(device buffers exist on contexts with device 'cuda')")

    def __enter__(self) -> RunContext:
        self._check_open()
        return self

    # ---- helpers for the backends ------------------------------------------------------
    def _init_outputs(self, outputs: dict[str, np.ndarray]) -> None:
        self.outputs = outputs
        self._all_outputs = tuple(outputs)

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInput(f"this {type(self).__name__} is closed: create a new context with "
                               "model.create_context()")

    def _fetch_names(self, fetch: Any) -> tuple[str, ...]:
        if isinstance(fetch, (str, bytes)) or not isinstance(fetch, Iterable):
            raise InvalidInput(f"fetch must be a sequence of output names, e.g. ('logits',), or None for all, "
                               f"got {describe(fetch)}")
        names = tuple(fetch)
        unknown = [n for n in names if n not in self.outputs]
        if unknown:
            raise InvalidInput(f"fetch names {unknown!r}, which the network does not output; its outputs: "
                               f"{list(self.outputs)}")
        return names


class Runner(Closable, ABC):
    """A loaded network. Thread-safe: share one between predictors and threads.

    ``close()`` (or ``with``) drops the runner's framework objects (session, engine, module);
    contexts already created keep what they use until they are closed themselves."""

    #: what actually runs, e.g. "onnxruntime:CPUExecutionProvider", "torch:cpu", "tensorrt:sm_90"
    name: str
    #: "cpu" or "cuda"
    device: str
    #: arithmetic of the network that runs: "fp32", "fp16" (TensorRT plans) or "int8"
    precision: str = "fp32"

    def __init__(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]):
        self.input_specs = inputs
        self.output_specs = outputs

    def create_context(self, dims: Mapping[str, int] | None = None) -> RunContext:
        """A new context with buffers for the concrete ``dims`` (needed for dynamic dims)."""
        if self._closed:
            raise InvalidInput(f"runner {self.name} is closed: load the model again")
        return self._create_context(dims or {})

    @abstractmethod
    def _create_context(self, dims: Mapping[str, int]) -> RunContext:
        """The backend's context for ``dims``."""

    def __enter__(self) -> Runner:
        return self
