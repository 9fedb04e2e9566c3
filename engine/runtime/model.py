"""``ivos.load``: a model bundle plus the backend that runs it, shareable between threads."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .._validate import describe, nonnegative_int
from ..errors import InvalidInput, ModelError
from .backends import RunContext, Runner, create_runner
from .bundle import Bundle, osvos_part, read_bundle
from .threads import resolve_threads

log = logging.getLogger("ivos")


@dataclass(frozen=True)
class Model:
    """A loaded bundle. Thread-safe: give each predictor (and thread) its own context via
    ``create_context``; the network itself is shared. ``close()`` (or ``with ivos.load(...)
    as model:``) releases the network once its contexts are closed too."""

    bundle: Bundle
    runner: Runner
    threads: int = 0
    """CPU threads of the backend and of the native post-processing of the predictors that
    run this model (resolved by ``load``; 0 = one per usable CPU)."""
    backend_request: tuple[str, str] = ("auto", "auto")
    """(backend, device) as ``load`` was asked: the parts (``part``) are loaded the same way."""
    precision_request: str = "auto"
    """``load``'s precision: the parts follow it ("fp32" keeps them float; otherwise a part
    runs its int8 graph where the bundle ships one and ONNX Runtime runs on the CPU)."""
    _parts: dict = field(default_factory=dict, compare=False, repr=False)
    _parts_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def part(self, name: str) -> "Model":
        """The ``Model`` of one part of an OSVOS bundle that ships its trunk and head as graphs
        of their own (``ivos.runtime.bundle.osvos_part``; "trunk" or "head"), loaded on first use with
        this model's backend, device and threads and kept; closed with this model. Its
        precision: float under ``precision="fp32"``, else the part's int8 graph where the
        bundle ships one (``artifacts.trunk_onnx_int8``) and ONNX Runtime runs on the CPU.
        ModelError when the bundle has no such part."""
        with self._parts_lock:
            if name not in self._parts:
                parsed = osvos_part(self.bundle, name)
                backend, device = self.backend_request
                self._parts[name] = Model(parsed, create_runner(parsed, backend=backend, device=device,
                                                                threads=self.threads,
                                                                precision="fp32" if self.precision_request == "fp32"
                                                                else "auto"),
                                          self.threads, self.backend_request)
            return self._parts[name]

    @property
    def backend(self) -> str:
        """What actually runs, e.g. "onnxruntime:CPUExecutionProvider" or "torch:cuda"."""
        return self.runner.name

    @property
    def precision(self) -> str:
        """Arithmetic of the network that runs: "fp32", "fp16" or "int8"."""
        return self.runner.precision

    @property
    def device(self) -> str:
        return self.runner.device

    @property
    def working_size(self) -> tuple[int, int]:
        """(height, width) of the network input in pixels."""
        return self.bundle.working_size

    def create_context(self, dims: Mapping[str, int] | None = None) -> RunContext:
        """A new ``RunContext`` (buffers, and a stream on CUDA) for one predictor or thread:
        see ``ivos.runtime.backends.base`` for the host and device paths. Close it when done.
        ``dims``: sizes of the network's named dynamic dims, e.g. an OSVOS graph's height and
        width for a crop (``ivos.runtime.bundle.osvos_dims``); None: the working size's
        (``Bundle.default_dims``)."""
        return self.runner.create_context(self.bundle.default_dims() if dims is None else dims)

    def close(self) -> None:
        """Releases the runner (``Runner.close``): ``create_context`` refuses afterwards."""
        with self._parts_lock:
            for part in self._parts.values():
                part.close()
        self.runner.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "models"
"""Bundles that ship inside the package (``ivos/models/<name>``), loadable by name."""


def shipped_bundles() -> list[str]:
    """Names of the bundles that ship inside the package, loadable by name."""
    if not SHIPPED_MODELS.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_MODELS.iterdir() if (p / "model.json").is_file())


def resolve_bundle(bundle: str | Path) -> Path:
    """A bundle folder path, or the name of a shipped bundle (e.g. "ivos-cpu").

    Raises:
        InvalidInput: ``bundle`` is not a str or path.
        ModelError: neither a path that exists nor a shipped bundle's name (the message
            lists the shipped names).
    """
    if not isinstance(bundle, (str, Path)) or (isinstance(bundle, str) and not bundle):
        raise InvalidInput(f"bundle must be a bundle folder path or a shipped bundle name, got {describe(bundle)}")
    path = Path(bundle)
    if path.exists():
        return path
    if isinstance(bundle, str) and (SHIPPED_MODELS / bundle / "model.json").is_file():
        return SHIPPED_MODELS / bundle
    raise ModelError(f"model bundle {str(bundle)!r} not found: no such folder, and no shipped bundle of that name "
                     f"(shipped bundles: {', '.join(shipped_bundles()) or 'none'})")


def load(bundle: str | Path, *, device: str = "auto", backend: str = "auto", threads: int = 0,
         precision: str = "auto") -> Model:
    """Loads a model bundle folder (``model.json`` + artifacts).

    Args:
        bundle: path of the bundle folder, or the name of a shipped bundle
            (``shipped_bundles()``: "ivos-lite0" and "osvos-lite0", the defaults; "ivos-cpu", "osvos-cpu").
        device: "auto", "cpu" or "cuda".
        backend: "auto" (TensorRT plan for this GPU > ORT CUDA > ORT CPU > torch), "ort",
            "tensorrt" or "torch".
        threads: intra-op CPU threads of the backend (0 = one per CPU this process may use:
            ``ivos.runtime.threads``, the policy measured in benchmarks/results/threads.md).
        precision: "auto" (the bundle's int8 network when ONNX Runtime runs on the CPU and the
            bundle ships one, else float), "fp32" or "int8" (ONNX Runtime CPU only). With
            "auto", an int8 network ONNX Runtime cannot load (corrupt file, inputs that do
            not match the card) logs a warning on the "ivos" logger and the float network
            runs instead (``Model.precision`` says "fp32"); "int8" raises ModelError.

    Raises:
        ModelError: the bundle is missing, corrupt or incompatible (the message names the
            file and field), e.g. a network file ONNX Runtime cannot parse, or graph
            inputs/outputs whose names, shapes or dtypes differ from the card's.
        InvalidInput: an argument has the wrong type or value.
        BackendUnavailable: the backend cannot run here (the message names what to install).
    """
    threads = resolve_threads(nonnegative_int("threads", threads))
    parsed = read_bundle(resolve_bundle(bundle))
    runner = create_runner(parsed, backend=backend, device=device, threads=threads, precision=precision)
    log.info("ivos: loaded %s %s with %s", parsed.name, parsed.version, runner.name)
    return Model(parsed, runner, threads, (backend, device), precision)
