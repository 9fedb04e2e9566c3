"""Large scratch arrays on small pages.

numpy asks the kernel for transparent huge pages (``madvise(MADV_HUGEPAGE)``) on every array of
4 MB or more. On virtual machines that hand free memory back to their host (free page
reporting, as Firecracker guests do), the first touch of such an array is slow: the guest
needs free 2 MB blocks, which are the ones it has reported, and the host must back each
again. On the 2-core VM a fresh 196 MB array (16 fine-tuning examples' trunk features) took
1.3-2.1 s to fill a few seconds after the last one was freed, and 0.13 s on small pages
(``benchmarks/results/video_speed_pages.md``). ``empty`` gives an array on an anonymous memory
map that carries no such advice, so it gets ordinary 4 KB pages; the mapping is unmapped when
the array and its views are gone.
"""
from __future__ import annotations

import mmap
from typing import Sequence

import numpy as np


def empty(shape: Sequence[int], dtype: np.dtype | type) -> np.ndarray:
    """A zero-filled (a fresh anonymous map), writable, C-contiguous array of ``shape``
    and ``dtype`` on small pages. For arrays that are filled once and used for a while (the
    fine-tuning examples); small arrays gain nothing from it."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    buffer = mmap.mmap(-1, max(count * dtype.itemsize, 1))  # anonymous, private, read-write
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(tuple(shape))
