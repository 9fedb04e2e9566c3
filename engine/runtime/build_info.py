"""What the native extension was compiled with and what the running machine offers."""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import Any

from .. import _C
from .._version import __version__


@lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """Number of CUDA devices the compiled-in CUDA runtime sees (0 without CUDA/driver/GPU)."""
    if not _C.compiled_with_cuda():
        return 0
    return int(_C.cuda_device_count())


def build_info() -> dict[str, Any]:
    """Returns a JSON-serialisable dict: what ``ivos._C`` was compiled with (compiler, CUDA
    toolkit and architectures) and what this machine offers (CPU threads, CUDA devices and
    installed runtime packages; detected without importing them)."""
    from importlib.util import find_spec

    compiled = _C.build_config()
    devices = cuda_device_count()
    info: dict[str, Any] = {
        "version": __version__,
        "compiled": compiled,
        "machine": {
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_threads": os.cpu_count(),
            "native_threads": int(_C.default_num_threads()),
            "cuda_devices": devices,
            "cuda_device_names": [_C.cuda_device_name(i) for i in range(devices)],
        },
        "packages": {
            name: find_spec(name) is not None
            for name in ("onnxruntime", "tensorrt", "torch", "cuda", "pydensecrf")
        },
    }
    return info
