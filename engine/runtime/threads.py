"""The thread policy: one number of threads for every CPU pool ivos runs (ONNX Runtime's
intra-op pool, torch's during fine-tuning, our native ops), which run one after another,
never at the same time. Measured in ``benchmarks/results/threads.md``: with ONNX Runtime's
spin-waiting off (``backends/ort.py``), one thread per usable CPU is fastest on an idle
machine and within ~10% of one thread on a loaded one."""
from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: containers and ``taskset`` limit it),
    falling back to the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int) -> int:
    """``threads`` as given, or ``usable_cpus()`` for 0 (the default everywhere)."""
    return threads if threads > 0 else usable_cpus()
