"""render_clicks: the C++ op (and the CUDA kernel where a GPU exists) against the numpy
reference on random inputs, the documented semantics on hand-built cases, and validation."""
import math

import numpy as np
import pytest

import ivos
from ivos import _C
from ivos.ops.clicks import TRUNCATE

HAS_GPU = ivos.build_info()["machine"]["cuda_devices"] > 0
needs_gpu = [
    pytest.mark.cuda,
    pytest.mark.skipif(not HAS_GPU, reason="no CUDA device (ivos.build_info()['machine']['cuda_devices'] == 0)"),
]
NATIVE_DEVICES = ["cpu", pytest.param("cuda", marks=needs_gpu)]
ALL_DEVICES = ["numpy", *NATIVE_DEVICES]
ATOL = 1e-5
FLOOR = math.exp(-0.5 * TRUNCATE**2)


def g(d: float, sigma: float) -> float:
    """The truncated Gaussian of the module docstring, written out independently."""
    return (math.exp(-d * d / (2 * sigma * sigma)) - FLOOR) / (1 - FLOOR) if d < TRUNCATE * sigma else 0.0


def random_case(seed: int) -> dict:
    """Random size (1xW and Hx1 included), sigma from tiny to huge, clicks partly outside the
    image, 0..3 strokes of 1..5 points."""
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 48, size=2))
    if seed % 7 == 0:
        height = 1
    elif seed % 7 == 1:
        width = 1
    sigma = float(rng.choice([0.05, 0.6, 2.0, 7.5, 500.0])) * float(rng.uniform(0.8, 1.2))
    n = int(rng.integers(0, 9))
    xs = rng.uniform(-0.5 * width - 3, 1.5 * width + 3, n)
    ys = rng.uniform(-0.5 * height - 3, 1.5 * height + 3, n)
    if seed % 3 == 0 and n:  # exactly on pixel centres, where the peak is
        xs, ys = np.round(xs), np.round(ys)
    clicks = np.stack([xs, ys, rng.integers(0, 2, n)], axis=1)
    strokes = [
        (np.stack([rng.uniform(-5, width + 5, m), rng.uniform(-5, height + 5, m)], axis=1), int(rng.integers(0, 2)))
        for m in rng.integers(1, 6, size=int(rng.integers(0, 4)))
    ]
    return dict(height=height, width=width, clicks=clicks, sigma=sigma, strokes=strokes)


def render(device: str, case: dict, **kwargs) -> np.ndarray:
    return ivos.render_clicks(case["height"], case["width"], case["clicks"], sigma=case["sigma"],
                              strokes=case["strokes"], device=device, **kwargs)


# ---- native vs numpy reference ----------------------------------------------------------

@pytest.mark.parametrize("device", NATIVE_DEVICES)
def test_native_matches_numpy_on_random_inputs(device):
    nonzero = 0
    for seed in range(60):
        case = random_case(seed)
        ref = render("numpy", case)
        got = render(device, case)
        assert got.dtype == np.float32 and got.shape == (case["height"], case["width"])
        np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL, err_msg=f"seed {seed}: {case}")
        nonzero += bool(np.any(ref != 0))
    assert nonzero >= 40  # the comparison is about drawn Gaussians, not empty images


@pytest.mark.parametrize("device", NATIVE_DEVICES)
@pytest.mark.parametrize(
    "height, width, sigma",
    [(1, 37, 3.0), (29, 1, 3.0), (1, 1, 0.7), (23, 31, 500.0), (23, 31, 0.05), (480, 854, 9.0)],
)
def test_native_matches_numpy_on_edge_shapes_and_sigmas(device, height, width, sigma):
    rng = np.random.default_rng(height * 1000 + width)
    clicks = np.stack([rng.uniform(-3, width + 3, 12), rng.uniform(-3, height + 3, 12), rng.integers(0, 2, 12)], 1)
    clicks[:4, :2] = np.round(clicks[:4, :2])  # some on pixel centres
    clicks[4] = (width + 2.5 * sigma, height / 2, 1)  # outside, its tail still inside
    strokes = [(np.array([[width / 3, height / 2]]), 1),
               (np.array([[-2.0, -2.0], [width + 1.0, height * 0.7], [width / 2, height + 2.0]]), 0)]
    case = dict(height=height, width=width, clicks=clicks, sigma=sigma, strokes=strokes)
    ref = render("numpy", case)
    assert np.any(ref != 0)
    np.testing.assert_allclose(render(device, case), ref, rtol=0, atol=ATOL)


@pytest.mark.parametrize("device", ALL_DEVICES)
def test_no_clicks_gives_zeros(device):
    out = ivos.render_clicks(5, 7, np.zeros((0, 3)), sigma=2.0, device=device)
    assert out.shape == (5, 7) and not np.any(out)


@pytest.mark.parametrize("device", ALL_DEVICES)
def test_clicks_far_outside_draw_nothing(device):
    clicks = [[-100.0, 3.0, 1], [3.0, 1e6, 0], [-1e30, -1e30, 1]]
    out = ivos.render_clicks(9, 9, clicks, sigma=2.0, device=device)
    assert not np.any(out)


@pytest.mark.parametrize("device", ALL_DEVICES)
def test_out_is_overwritten_in_full(device):
    case = random_case(5)
    out = np.full((case["height"], case["width"]), np.nan, np.float32)
    result = render(device, case, out=out)
    assert result is out
    np.testing.assert_allclose(out, render("numpy", case), rtol=0, atol=ATOL)


# ---- semantics --------------------------------------------------------------------------

@pytest.mark.parametrize("device", ALL_DEVICES)
def test_peak_is_plus_one_and_minus_one_on_pixel_centres(device):
    # Non-square with x != y, so swapping rows and columns would fail.
    out = ivos.render_clicks(12, 20, [[15, 3, 1], [4, 9, 0]], sigma=1.5, device=device)
    assert out[3, 15] == pytest.approx(1.0, abs=1e-6)
    assert out[9, 4] == pytest.approx(-1.0, abs=1e-6)
    assert out.max() == out[3, 15] and out.min() == out[9, 4]


@pytest.mark.parametrize("device", ALL_DEVICES)
def test_values_follow_the_truncated_gaussian(device):
    sigma = 1.5
    out = ivos.render_clicks(30, 30, [[10.25, 12.5, 1]], sigma=sigma, device=device)
    rows, cols = np.mgrid[0:30, 0:30]
    dist = np.hypot(cols - 10.25, rows - 12.5)
    expected = np.vectorize(lambda d: g(d, sigma))(dist)
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)
    assert np.all(out[dist >= TRUNCATE * sigma] == 0)  # exactly zero beyond the cut-off
    assert np.all(out[dist < TRUNCATE * sigma - 0.05] > 0)


@pytest.mark.parametrize("device", ALL_DEVICES)
def test_coinciding_positives_clip_at_one_and_opposites_cancel(device):
    same = ivos.render_clicks(15, 15, [[7, 7, 1], [7, 7, 1]], sigma=3.0, device=device)
    single = ivos.render_clicks(15, 15, [[7, 7, 1]], sigma=3.0, device=device)
    assert same.max() == 1.0 and same[7, 7] == 1.0
    np.testing.assert_allclose(same, np.clip(2 * single.astype(np.float64), -1, 1), rtol=0, atol=ATOL)
    cancel = ivos.render_clicks(15, 15, [[7, 7, 1], [7, 7, 0]], sigma=3.0, device=device)
    np.testing.assert_allclose(cancel, 0, atol=ATOL)


@pytest.mark.parametrize("device", ALL_DEVICES)
def test_click_at_the_centre_is_symmetric(device):
    out = ivos.render_clicks(21, 21, [[10, 10, 0]], sigma=2.5, device=device)
    for flipped in (out[::-1], out[:, ::-1], out.T):
        np.testing.assert_allclose(out, flipped, rtol=0, atol=1e-6)


@pytest.mark.parametrize("device", ALL_DEVICES)
def test_stroke_equals_a_click_beyond_its_ends_and_one_along_it(device):
    sigma = 2.0
    stroke = ivos.render_clicks(15, 40, None, sigma=sigma, strokes=[([[10, 7], [30, 7]], 1)], device=device)
    left = ivos.render_clicks(15, 40, [[10, 7, 1]], sigma=sigma, device=device)
    right = ivos.render_clicks(15, 40, [[30, 7, 1]], sigma=sigma, device=device)
    np.testing.assert_allclose(stroke[:, :11], left[:, :11], rtol=0, atol=ATOL)
    np.testing.assert_allclose(stroke[:, 30:], right[:, 30:], rtol=0, atol=ATOL)
    np.testing.assert_allclose(stroke[7, 10:31], 1.0, atol=1e-6)
    # Between the ends the tube depends on the distance to the line only.
    np.testing.assert_allclose(stroke[9, 12:29], g(2.0, sigma), atol=ATOL)


@pytest.mark.parametrize("device", ALL_DEVICES)
def test_one_point_stroke_equals_a_click(device):
    dot = ivos.render_clicks(13, 17, None, sigma=1.7, strokes=[(np.array([[5.3, 6.6]]), 0)], device=device)
    click = ivos.render_clicks(13, 17, [[5.3, 6.6, 0]], sigma=1.7, device=device)
    assert dot.min() < -0.5
    np.testing.assert_allclose(dot, click, rtol=0, atol=ATOL)


@pytest.mark.parametrize("device", ALL_DEVICES)
def test_a_stroke_is_added_once_where_segments_meet(device):
    # A V-shaped stroke: at the shared vertex both segments have distance 0, yet the value is 1,
    # not 2 (clipped), and above the vertex (where it is the nearest point of both segments)
    # the stroke equals a single click there.
    stroke = ivos.render_clicks(20, 20, None, sigma=2.0, strokes=[([[2, 15], [10, 5], [18, 15]], 0)], device=device)
    click = ivos.render_clicks(20, 20, [[10, 5, 0]], sigma=2.0, device=device)
    assert stroke[5, 10] == pytest.approx(-1.0, abs=1e-6)
    np.testing.assert_allclose(stroke[:5, 9:12], click[:5, 9:12], rtol=0, atol=ATOL)


# ---- validation -------------------------------------------------------------------------

GOOD = dict(height=8, width=9, clicks=[[1.0, 2.0, 1]], sigma=2.0)


@pytest.mark.parametrize(
    "change, name",
    [
        (dict(clicks=[[1.0, 2.0]]), "clicks"),
        (dict(clicks=[[1.0, 2.0, 1, 0]]), "clicks"),
        (dict(clicks=[[1.0, 2.0, 2]]), "label"),
        (dict(clicks=[[1.0, 2.0, 0.5]]), "label"),
        (dict(clicks=[[np.nan, 2.0, 1]]), "clicks"),
        (dict(clicks=[[1.0, np.inf, 1]]), "clicks"),
        (dict(clicks="abc"), "clicks"),
        (dict(sigma=0.0), "sigma"),
        (dict(sigma=-1.0), "sigma"),
        (dict(sigma=float("nan")), "sigma"),
        (dict(sigma="wide"), "sigma"),
        (dict(height=0), "height"),
        (dict(width=-3), "width"),
        (dict(height=2.5), "height"),
        (dict(strokes=[(np.zeros((0, 2)), 1)]), "strokes"),
        (dict(strokes=[([[1.0, 2.0]], 3)]), "strokes"),
        (dict(strokes=[([[1.0, np.nan]], 1)]), "strokes"),
        (dict(strokes=[[1.0, 2.0, 3.0]]), "strokes"),
        (dict(out=np.zeros((8, 9), np.float64)), "out"),
        (dict(out=np.zeros((9, 8), np.float32)), "out"),
        (dict(out=np.zeros((8, 18), np.float32)[:, ::2]), "out"),
        (dict(device="gpu"), "device"),
    ],
)
def test_bad_input_raises_invalid_input_naming_the_argument(change, name):
    with pytest.raises(ivos.InvalidInput, match=name):
        ivos.render_clicks(**{**GOOD, **change})


@pytest.mark.parametrize(
    "change, name",
    [(dict(device_ptr=0), "device_ptr"), (dict(device_ptr=-8), "device_ptr"), (dict(device_ptr=1.5), "device_ptr"),
     (dict(stream=-1), "stream"), (dict(sigma=0.0), "sigma"), (dict(clicks=[[1.0, 2.0]]), "clicks")],
)
def test_render_clicks_cuda_validates_before_touching_the_device(change, name):
    args = dict(device_ptr=4096, **GOOD)
    with pytest.raises(ivos.InvalidInput, match=name):
        ivos.render_clicks_cuda(**{**args, **change})


@pytest.mark.skipif(HAS_GPU, reason="checks the error where there is no GPU")
def test_cuda_without_gpu_raises_backend_unavailable():
    with pytest.raises(ivos.BackendUnavailable, match="cuda"):
        ivos.render_clicks(4, 4, [[1, 1, 1]], sigma=1.0, device="cuda")
    with pytest.raises(ivos.BackendUnavailable, match="cuda"):
        ivos.render_clicks_cuda(4096, 4, 4, [[1, 1, 1]], sigma=1.0)


# ---- CUDA device-pointer entry ----------------------------------------------------------

@pytest.mark.parametrize("seed", [3, 11, 12, 40])
@pytest.mark.cuda
@pytest.mark.skipif(not HAS_GPU, reason="no CUDA device (ivos.build_info()['machine']['cuda_devices'] == 0)")
def test_render_clicks_cuda_writes_the_device_buffer_on_a_stream(seed):
    case = random_case(seed)
    height, width = case["height"], case["width"]
    nbytes = height * width * 4
    ptr = _C.cuda_malloc(nbytes)
    stream = _C.cuda_stream_create()
    try:
        _C.cuda_memset(ptr, 0xFF, nbytes)  # NaN garbage: every pixel must be overwritten
        ivos.render_clicks_cuda(ptr, height, width, case["clicks"], sigma=case["sigma"],
                                strokes=case["strokes"], stream=stream)
        _C.cuda_stream_synchronize(stream)
        got = np.empty((height, width), np.float32)
        _C.cuda_memcpy_to_host(got, ptr)
    finally:
        _C.cuda_stream_destroy(stream)
        _C.cuda_free(ptr)
    np.testing.assert_allclose(got, render("numpy", case), rtol=0, atol=ATOL)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_GPU, reason="no CUDA device (ivos.build_info()['machine']['cuda_devices'] == 0)")
def test_render_clicks_cuda_rejects_a_host_pointer():
    host = np.zeros((4, 4), np.float32)
    with pytest.raises(ivos.InvalidInput, match="device_ptr"):
        ivos.render_clicks_cuda(host.ctypes.data, 4, 4, [[1, 1, 1]], sigma=1.0)


# ---- threading (ivos::parallel_for's persistent pool) ----------------------------------------

def _busy_case(seed: int):
    """Enough clicks and strokes at 1080x1920 that the C++ op splits the rows over threads."""
    rng = np.random.default_rng(seed)
    h, w = 1080, 1920
    clicks = np.stack([rng.uniform(-50, w + 50, 60), rng.uniform(-50, h + 50, 60), rng.integers(0, 2, 60)], 1)
    strokes = [(rng.uniform(0, min(h, w), (5, 2)), int(rng.integers(0, 2))) for _ in range(3)]
    points = np.concatenate([p for p, _ in strokes]).astype(np.float32)
    offsets = np.array([0, 5, 10, 15], np.int64)
    labels = np.array([label for _, label in strokes], np.int32)
    return h, w, clicks.astype(np.float32), points, offsets, labels


def _render_native(case, sigma: float, threads: int) -> np.ndarray:
    h, w, clicks, points, offsets, labels = case
    out = np.full((h, w), np.nan, np.float32)
    _C.render_clicks_cpu(out, clicks, points, offsets, labels, sigma, threads)
    return out


def test_thread_count_does_not_change_the_result():
    """Rows are split between threads differently; every pixel must come out bit-identical."""
    case = _busy_case(0)
    single = _render_native(case, 25.0, 1)
    for threads in (2, 3, 8):
        np.testing.assert_array_equal(_render_native(case, 25.0, threads), single)


def test_concurrent_calls_from_python_threads_give_identical_results():
    """Calls from several Python threads at once share the one thread pool (a call that finds
    it busy runs inline): each must still produce exactly the sequential result."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [_busy_case(seed) for seed in range(4)]
    want = [_render_native(case, 25.0, 2) for case in cases]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda k: _render_native(cases[k % 4], 25.0, 2), range(16)))
    for k, image in enumerate(got):
        np.testing.assert_array_equal(image, want[k % 4])


def test_returned_arrays_do_not_share_recycled_memory():
    """render_clicks without out= returns recycled memory: a live result must never be
    handed out again (it would be overwritten by the next call)."""
    first = ivos.render_clicks(48, 64, [[10, 10, 1]], sigma=3.0)
    kept = first.copy()
    second = ivos.render_clicks(48, 64, [[40, 30, 0]], sigma=3.0)
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)
    del first
    third = ivos.render_clicks(48, 64, [[20, 20, 1]], sigma=3.0)
    np.testing.assert_array_equal(third, ivos.render_clicks(48, 64, [[20, 20, 1]], sigma=3.0, device="numpy"))
