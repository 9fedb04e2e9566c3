"""Inference backends behind one runner interface (``base.Runner``): ONNX Runtime,
TensorRT and torch. Each backend module imports its framework lazily."""
from __future__ import annotations

import logging
import os
from importlib.util import find_spec

from ...errors import BackendUnavailable, InvalidInput, ModelError
from ..bundle import Bundle
from .base import RunContext, Runner

log = logging.getLogger("ivos")

BACKENDS = ("auto", "ort", "tensorrt", "torch")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "int8")
"""``auto``: the bundle's int8 ONNX (``artifacts.onnx_int8``) when ONNX Runtime runs on the
CPU and the bundle has one (ivos-export writes it only after measuring its accuracy), else
the float network; an int8 file ONNX Runtime cannot load is logged as a warning and the
float network runs. ``int8`` demands it (ONNX Runtime CPU only; ModelError when it cannot
load); ``fp32`` never uses it."""

__all__ = ["BACKENDS", "DEVICES", "PRECISIONS", "RunContext", "Runner", "create_runner"]


def _gpu_visible() -> bool:
    from ..build_info import cuda_device_count

    return cuda_device_count() > 0


def _backend_has_cuda(backend: str) -> bool:
    if backend == "ort":
        from .ort import ort_cuda_available

        return ort_cuda_available()
    import torch

    return torch.cuda.is_available()


def _auto_candidates(bundle: Bundle, device: str, precision: str) -> list[tuple[str, str]]:
    """(backend, device) pairs in order of preference: TensorRT plan for this GPU, ORT CUDA
    EP, ORT CPU, then torch (when only torch is installed). int8 means ORT on the CPU."""
    if precision == "int8":
        return [("ort", "cpu")] if find_spec("onnxruntime") and device != "cuda" else []
    gpu = device in ("auto", "cuda") and _gpu_visible()
    out = []
    if gpu and find_spec("tensorrt") and bundle.artifacts.get("tensorrt"):
        out.append(("tensorrt", "cuda"))
    if find_spec("onnxruntime"):
        from .ort import ort_cuda_available

        if gpu and ort_cuda_available():
            out.append(("ort", "cuda"))
        if device != "cuda":
            out.append(("ort", "cpu"))
    if find_spec("torch") and bundle.has_artifact("torch"):
        if gpu:
            out.append(("torch", "cuda"))
        if device != "cuda":
            out.append(("torch", "cpu"))
    return out


def _onnx_file(bundle: Bundle, device: str, precision: str) -> tuple[str, str]:
    """(artifact key, precision) of the ONNX file ORT runs on ``device``."""
    if precision == "int8":
        if device != "cpu":
            raise BackendUnavailable("the int8 network runs on ONNX Runtime's CPU provider only; "
                                     "use precision='fp32' (or 'auto') on the GPU")
        bundle.artifact("onnx_int8")  # ModelError naming the field when the bundle has none
        return "onnx_int8", "int8"
    if precision == "auto" and device == "cpu" and bundle.has_artifact("onnx_int8"):
        return "onnx_int8", "int8"
    return "onnx", "fp32"


def int8_weight_bits(bundle: Bundle) -> int:
    """Bits of the int8 graph's weights: the ``weight_bits`` of the card section that
    describes ``artifacts.onnx_int8`` (``quantization``, an OSVOS trunk's
    ``trunk_quantization``); 8 for bundles quantized before the field existed."""
    file = bundle.artifacts.get("onnx_int8")
    for section in bundle.card.values():
        if isinstance(section, dict) and section.get("file") == file:
            return int(section.get("weight_bits", 8))
    return 8


_warned_saturation: set[str] = set()


def _warn_if_int8_saturates(bundle: Bundle) -> None:
    """Once per bundle: a warning when its int8 graph has 8-bit weights and this CPU's int8
    kernels saturate on them (``ivos.runtime.cpu_features``): its masks then stray further
    from the float network's than the card's agreement says."""
    from ..cpu_features import int8_kernels_saturate

    key = f"{bundle.path}:{bundle.name}"
    if key in _warned_saturation or os.environ.get("IVOS_ORT_EXACT_INT8") == "1" or int8_weight_bits(bundle) < 8:
        return
    if int8_kernels_saturate():
        _warned_saturation.add(key)
        log.warning("ivos: %s's int8 network has 8-bit weights, on which ONNX Runtime's int8 kernels saturate on "
                    "this CPU (x86 without VNNI), so its masks differ more from the float network's: re-quantize "
                    "it with `ivos-export int8 %s` (7-bit weights), or set IVOS_ORT_EXACT_INT8=1 (exact, slower "
                    "kernels)", bundle.name, bundle.path)


def _create(bundle: Bundle, backend: str, device: str, threads: int, precision: str) -> Runner:
    if backend != "ort" and precision == "int8":
        raise BackendUnavailable(f"precision 'int8' needs backend 'ort' on the CPU, got backend {backend!r}")
    if backend == "ort":
        from .ort import OrtRunner

        key, actual = _onnx_file(bundle, device, precision)

        def ort_runner(key: str, actual: str) -> Runner:
            runner = OrtRunner(bundle.artifact(key), bundle.inputs, bundle.outputs, device=device, threads=threads,
                               precision=actual, card=bundle.path / "model.json", artifact=key)
            if key == "onnx_int8":
                _warn_if_int8_saturates(bundle)
            return runner

        if key == "onnx_int8" and precision == "auto":
            try:
                return ort_runner(key, actual)
            except ModelError as e:  # the int8 file is optional under "auto": run the float network
                log.warning("ivos: %s; running the float network (artifacts.onnx) instead", e)
                return ort_runner("onnx", "fp32")
        return ort_runner(key, actual)
    if backend == "torch":
        from .torch_backend import TorchRunner

        return TorchRunner(bundle.artifact("torch"), bundle.inputs, bundle.outputs, device=device, threads=threads)
    from .tensorrt import TensorRTRunner, matching_plan

    plan = matching_plan(bundle)
    if plan is None:
        raise BackendUnavailable(f"bundle {bundle.path} has no TensorRT plan for this GPU and TensorRT version: "
                                 "build one with `ivos-export tensorrt`")
    path, entry = plan
    return TensorRTRunner(path, bundle.inputs, bundle.outputs, precision=str(entry.get("precision", "fp16")))


def create_runner(bundle: Bundle, *, backend: str = "auto", device: str = "auto", threads: int = 0,
                  precision: str = "auto") -> Runner:
    """Loads ``bundle`` with ``backend`` on ``device`` at ``precision`` (see PRECISIONS).
    ``auto`` tries, in order, a TensorRT plan for this GPU, ONNX Runtime CUDA, ONNX Runtime
    CPU and torch; the returned runner's ``name`` says what actually runs."""
    if backend not in BACKENDS:
        raise InvalidInput(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device not in DEVICES:
        raise InvalidInput(f"device must be one of {DEVICES}, got {device!r}")
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if backend != "auto":
        if device == "auto":
            device = "cuda" if backend == "tensorrt" or (_gpu_visible() and _backend_has_cuda(backend)) else "cpu"
        return _create(bundle, backend, device, threads, precision)
    errors = []
    for name, dev in _auto_candidates(bundle, device, precision):
        try:
            return _create(bundle, name, dev, threads, precision)
        except BackendUnavailable as e:  # try the next one, but say why
            log.info("ivos: backend %s/%s unavailable: %s", name, dev, e)
            errors.append(f"{name}/{dev}: {e}")
    raise BackendUnavailable(_why_nothing_runs(bundle, device, precision) + (
        " Tried: " + " | ".join(errors) if errors else ""))


def _why_nothing_runs(bundle: Bundle, device: str, precision: str) -> str:
    """What to install (or change) when no ``auto`` candidate could run the bundle."""
    if precision == "int8" and device == "cuda":
        return "precision 'int8' runs on ONNX Runtime's CPU provider only: use device='cpu' or precision='fp32'."
    has_ort = find_spec("onnxruntime") is not None
    if device == "cuda":
        reasons = []
        if not _gpu_visible():
            reasons.append("no CUDA device is visible to ivos (no NVIDIA GPU or driver here, or ivos._C was "
                           "built without CUDA; see ivos.build_info())")
        if has_ort:
            from .ort import no_cuda_provider_message, ort_cuda_available

            if not ort_cuda_available():
                reasons.append(no_cuda_provider_message())
        else:
            reasons.append("ONNX Runtime is not installed: pip install 'ivos[gpu]' (onnxruntime-gpu)")
        return "device 'cuda' cannot run this bundle here: " + "; ".join(reasons) + ". Use device='cpu' or 'auto'."
    if not has_ort:
        return ("no backend can run this bundle here: ONNX Runtime is not installed (pip install 'ivos[cpu]', "
                "or 'ivos[gpu]' for CUDA)" + ("" if bundle.has_artifact("torch") else
                                               "; the bundle has no torch artifact for the torch backend") + ".")
    return "no backend can run this bundle here."
