"""What the CPU offers ONNX Runtime's int8 kernels.

On x86-64, ORT multiplies uint8 activations by int8 weights with VNNI instructions where the
CPU has them (AVX512_VNNI, AVX_VNNI: exact 32-bit sums). Without VNNI (AVX2, AVX-512 without
VNNI) its fast kernel adds pairs of products in 16 bits, which saturate when both factors are
near full scale; weights on 7 bits (``ivos-export int8``'s default) cannot reach that.
"""
from __future__ import annotations

import functools
import platform

VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
"""/proc/cpuinfo flags of the instructions that give ORT exact uint8 x int8 dot products."""


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def int8_kernels_saturate() -> bool:
    """Whether ORT's fast uint8 x int8 kernels can saturate here: an x86-64 CPU whose flags
    are known and hold no VNNI. False where that cannot be told (other systems, other CPUs)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    flags = cpu_flags()
    return bool(flags) and not any(f in flags for f in VNNI_FLAGS)
