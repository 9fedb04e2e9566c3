"""``ivos.runtime.pages``: large scratch arrays on small pages behave as numpy arrays do."""
import gc
import mmap

import numpy as np
import pytest

from ivos.runtime import pages


@pytest.mark.parametrize("shape,dtype", [((16, 472, 60, 108), np.float32), ((3, 5), np.uint8), ((0, 4), np.float32)])
def test_empty_is_a_writable_contiguous_array_of_the_shape(shape, dtype):
    a = pages.empty(shape, dtype)
    assert a.shape == shape and a.dtype == np.dtype(dtype)
    assert a.flags.writeable and a.flags.c_contiguous
    a[...] = 7
    assert np.all(a == 7)


def test_slots_hold_what_is_written_and_views_share_it():
    a = pages.empty((4, 2, 3), np.float32)
    for i in range(4):
        a[i] = i
    view = a[2]
    assert np.array_equal(view, np.full((2, 3), 2, np.float32))
    view[0, 0] = -1
    assert a[2, 0, 0] == -1


def test_torch_shares_the_memory():
    torch = pytest.importorskip("torch")
    a = pages.empty((2, 3), np.float32)
    t = torch.from_numpy(a)
    t += 1.5
    assert np.all(a == 1.5)


def test_the_array_lives_on_an_anonymous_map_that_its_views_keep():
    a = pages.empty((1024, 1024), np.float32)
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)
    view = a[10:20]
    del a, base
    gc.collect()
    view[...] = 3  # still mapped: the view holds the map
    assert np.all(view == 3)
