"""The training-free memory read: key geometry (grid, origin, letterbox), the projection, the
cell values, the top-k readout, and the memory's bounds."""
import numpy as np
import pytest

from ivos.settings import MemorySettings
from ivos.video.memory_read import KEY_DIMS, KEY_STRIDE, FrameKeys, ObjectMemory, Projection


def _features(c=24, h8=12, w8=16, seed=0):
    return np.random.default_rng(seed).normal(0, 1, (c, h8, w8)).astype(np.float32)


def test_projection_is_orthonormal_and_keeps_the_leading_axes():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(80, 80)))[0]
    # strong variance along the first 3 basis vectors, little elsewhere
    coords = rng.normal(0, 1, (80, 400)) * np.r_[[10.0, 8.0, 6.0], np.full(77, 0.1)][:, None]
    high = (basis @ coords).reshape(80, 20, 20).astype(np.float32)
    p = Projection.fit(high, dims=3)
    assert p.axes.shape == (3, 80)
    np.testing.assert_allclose(p.axes @ p.axes.T, np.eye(3), atol=1e-4)
    # the fitted span is the strong one: projecting the strong basis vectors keeps their length
    kept = np.linalg.norm(p.axes @ basis[:, :3], axis=0)
    np.testing.assert_allclose(kept, 1.0, atol=1e-3)


def test_frame_keys_grid_origin_and_letterbox():
    high = _features()                     # a (96, 128)-pixel crop at stride 8
    p = Projection.fit(high, dims=8)
    fk = FrameKeys.of(high, (32, 16), (480, 864), p)
    assert fk.grid == (6, 8) and fk.keys.shape == (48, 8) and fk.origin == (32, 16)
    np.testing.assert_allclose(np.linalg.norm(fk.keys, axis=1), 1.0, atol=1e-5)
    # the letterbox ends 40 px below the origin: only 2 rows of 16-px cells are image
    short = FrameKeys.of(high, (32, 16), (16 + 40, 864), p)
    assert short.grid == (2, 8)
    # a key is the mean of its 2x2 stride-8 cells, projected, normalised
    z = p.axes @ (high[:, :2, :2].reshape(24, -1) - p.mean[:, None])
    expect = z.mean(axis=1)
    np.testing.assert_allclose(fk.keys[0], expect / np.linalg.norm(expect), rtol=1e-4, atol=1e-5)


def test_values_inside_and_to_working():
    high = _features()
    fk = FrameKeys.of(high, (32, 16), (480, 864), Projection.fit(high, dims=8))
    mask = np.zeros((480, 864), np.float32)
    mask[16:32, 32:48] = 1.0              # exactly the first cell
    mask[16 + 24:16 + 32, 32 + 16:32 + 32] = 1.0  # half of cell (1, 1)
    v = fk.values(mask).reshape(fk.grid)
    assert v[0, 0] == 1.0 and v[1, 1] == 0.5 and v.sum() == 1.5
    inside = fk.inside((32, 16, 32 + 2 * KEY_STRIDE, 16 + KEY_STRIDE)).reshape(fk.grid)
    assert inside.sum() == 2 and inside[0, 0] and inside[0, 1]
    canvas = fk.to_working(np.ones(fk.keys.shape[0], np.float32), (480, 864))
    assert canvas.shape == (120, 216)
    assert canvas[4:4 + 24, 8:8 + 32].min() == 1.0 and canvas.sum() == 24 * 32  # 0 outside the grid


def test_read_takes_the_mask_of_the_matching_keys():
    rng = np.random.default_rng(2)
    fg, bg = rng.normal(size=KEY_DIMS), rng.normal(size=KEY_DIMS)

    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    keys = unit(np.r_[fg + rng.normal(0, 0.1, (30, KEY_DIMS)), bg + rng.normal(0, 0.1, (30, KEY_DIMS))])
    values = np.r_[np.ones(30), np.zeros(30)].astype(np.float32)
    memory = ObjectMemory()
    memory.add(0, keys, values, annotated=True, capacity=2)
    query = unit(np.stack([fg + rng.normal(0, 0.1, KEY_DIMS), bg + rng.normal(0, 0.1, KEY_DIMS)]))
    out = memory.read(query, MemorySettings(top_k=10))
    assert out[0] > 0.99 and out[1] < 0.01
    # top_k larger than the memory reads all of it; a high temperature blends toward the mean
    blended = memory.read(query, MemorySettings(top_k=1000, temperature=100.0))
    assert 0.4 < blended[0] < 0.6


def test_propagated_frames_are_bounded_annotated_ones_stay():
    memory = ObjectMemory()
    k, v = np.ones((2, 4), np.float32) / 2, np.ones(2, np.float32)
    memory.add(0, k, v, annotated=True, capacity=2)
    for idx in range(1, 6):
        memory.add(idx, k, v, annotated=False, capacity=2)
    assert list(memory.fixed) == [0] and list(memory.recent) == [4, 5] and len(memory) == 3
    memory.add(5, k, v, annotated=True, capacity=2)  # a propagated frame that gets annotated moves over
    assert list(memory.fixed) == [0, 5] and list(memory.recent) == [4]


@pytest.mark.parametrize("kwargs, word", [
    ({"top_k": 0}, "top_k"), ({"every": 1.5}, "every"), ({"capacity": -1}, "capacity"),
    ({"temperature": 0}, "temperature"), ({"weight": 1.5}, "weight"), ({"veto_below": -0.1}, "veto_below"),
    ({"weight": 0.7, "prior_weight": 0.5}, "prior_weight"), ({"prior_readout": True}, "prior_readout"),
])
def test_settings_refuse_bad_values(kwargs, word):
    from ivos.errors import InvalidInput

    with pytest.raises(InvalidInput, match=word):
        MemorySettings(**kwargs)
