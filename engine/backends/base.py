"""The one runner interface every backend implements (after Polygraphy's runners).

A ``Runner`` is a loaded network: created once per model, thread-safe, shared. Each
predictor asks it for its own ``RunContext``: the input and output buffers, allocated and
bound once; the predictor writes inputs in place (``ctx.inputs[name][...] = ...`` or an op
writing straight into the buffer) and calls ``ctx.run()``, which returns the output buffers
(reused by the next run: copy what you keep). A context is not thread-safe; one per thread.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..bundle import TensorSpec
from ..errors import InvalidInput, ModelError

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


class RunContext(ABC):
    """Per-predictor bound buffers of one runner. Not thread-safe."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]

    @abstractmethod
    def run(self) -> dict[str, np.ndarray]:
        """Runs the network on ``self.inputs``; returns ``self.outputs`` (reused buffers)."""


class Runner(ABC):
    """A loaded network. Thread-safe: share one between predictors and threads."""

    #: what actually runs, e.g. "onnxruntime:CPUExecutionProvider", "torch:cpu", "tensorrt:sm_90"
    name: str
    #: "cpu" or "cuda"
    device: str
    #: arithmetic of the network that runs: "fp32", "fp16" (TensorRT plans) or "int8"
    precision: str = "fp32"

    def __init__(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]):
        self.input_specs = inputs
        self.output_specs = outputs

    @abstractmethod
    def create_context(self, dims: Mapping[str, int] | None = None) -> RunContext:
        """A new context with buffers for the concrete ``dims`` (needed for dynamic dims)."""
