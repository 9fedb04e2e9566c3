"""Property-based tests (Hypothesis) of the public API's inputs: images, clicks, labels,
mask_input and model.json fields. For any input, the outcome is either a documented ivos
error whose message starts with / names the argument or field, or a valid result (mask
uint8 HxW in {0, 1}, the clicked pixel carrying the click's label); never another exception
type, never a silent change of meaning (a label 0.7 is not "positive")."""
import copy
import json
import math
import shutil

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis (pip install 'ivos[test]')")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import ivos  # noqa: E402

H, W = 17, 23
# database=None: no .hypothesis/ folder in the checkout; failures print their example instead.
FAST = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return ivos.load(tiny_bundle, backend="ort", threads=1)


@pytest.fixture(scope="module")
def predictor(model):
    p = ivos.ImagePredictor(model, crf=False)
    p.set_image(np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8))
    return p


def _valid_mask(mask, h=H, w=W):
    assert isinstance(mask, np.ndarray) and mask.dtype == np.uint8 and mask.shape == (h, w)
    assert set(np.unique(mask).tolist()) <= {0, 1}


# ---- images ---------------------------------------------------------------------------
_DTYPES = st.sampled_from([np.uint8, np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32, np.float64,
                           np.bool_])


@st.composite
def images(draw):
    dtype = draw(st.one_of(st.just(np.uint8), _DTYPES))
    shape = draw(st.one_of(
        st.tuples(st.integers(0, 9), st.integers(0, 9), st.sampled_from([3, 3, 3, 1, 4, 0])),
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
    arr = draw(hnp.arrays(dtype, shape))
    if arr.ndim >= 2 and draw(st.booleans()):  # not C-contiguous: reversed, strided or transposed
        arr = draw(st.sampled_from([arr[::-1], arr[:, ::2], np.swapaxes(arr, 0, 1)]))
    return arr


@FAST
@given(image=st.one_of(images(), st.none(), st.text(max_size=3), st.lists(st.integers(0, 255), max_size=4)))
def test_any_image(model, image):
    p = ivos.ImagePredictor(model, crf=False)
    valid = (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
             and image.shape[0] > 0 and image.shape[1] > 0)
    try:
        p.set_image(image)
    except ivos.InvalidInput as e:
        assert not valid, e
        assert str(e).startswith("image ")
        return
    assert valid
    h, w = image.shape[:2]
    result = p.add_click(w - 0.5, 0, True)
    _valid_mask(result.mask, h, w)
    assert result.mask[0, w - 1] == 1


# ---- clicks ---------------------------------------------------------------------------
def _coordinate(limit):
    special = [0, 0.0, -0.0, limit - 0.5, limit - 1, limit, limit + 0.5, -1, -0.5, 1e-300, -1e-300,
               math.nan, math.inf, -math.inf, 1e30, 2 ** 64, 10 ** 400, np.float32(limit - 0.5), np.int64(limit),
               np.uint8(3), np.float16(1.5)]
    return st.one_of(
        st.sampled_from(special),
        st.floats(-2 * limit, 2 * limit),
        st.integers(-2 * limit, 2 * limit),
        st.sampled_from([None, True, False, "3", b"3", [3], (3,), np.array(3.0), 3 + 0j]))


def _coordinate_ok(v, limit):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    try:
        f = float(v)
    except OverflowError:  # an int beyond the float range
        return False
    return math.isfinite(f) and 0 <= f < limit


_LABELS = st.one_of(
    st.sampled_from([True, False, 0, 1, np.bool_(True), np.bool_(False), np.int8(1), np.uint64(0), np.int64(1)]),
    st.sampled_from([2, -1, 0.0, 1.0, 0.7, 0.5, math.nan, None, "yes", "no", "", "1", b"1", [1], (0,), 1 + 0j,
                     np.float32(1.0), np.array(1), np.int64(2)]),
    st.integers(), st.floats(), st.text(max_size=2))


def _label_value(v):
    """0/1 for a valid label, None for an invalid one."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return int(v)
    return None


@FAST
@given(x=_coordinate(W), y=_coordinate(H), positive=_LABELS)
def test_any_click(predictor, x, y, positive):
    predictor.reset()
    expected = ("x" if not _coordinate_ok(x, W) else "y" if not _coordinate_ok(y, H)
                else "positive" if _label_value(positive) is None else None)
    try:
        result = predictor.add_click(x, y, positive)
    except ivos.InvalidInput as e:
        assert expected is not None, e
        assert str(e).startswith(f"{expected} must be"), (expected, str(e))
        assert predictor.result is None
        return
    assert expected is None, (x, y, positive)
    _valid_mask(result.mask)
    assert result.mask[int(math.floor(float(y))), int(math.floor(float(x)))] == _label_value(positive)


# ---- predict(point_coords, point_labels) -----------------------------------------------
_ARRAY_DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8,
                                 np.uint64, np.bool_, np.complex64, np.str_, object])


@st.composite
def coords(draw):
    n = draw(st.integers(0, 4))
    shape = draw(st.sampled_from([(n, 2), (n, 2), (n, 2), (n,), (n, 3), (n, 2, 1), ()]))
    dtype = draw(st.one_of(st.sampled_from([np.float32, np.float64, np.int64]), _ARRAY_DTYPES))
    if dtype in (np.str_, object):
        return np.full(shape, draw(st.sampled_from(["1", None, 1.5])), dtype=dtype)
    values = st.one_of(st.floats(-3, max(H, W) + 3),
                       st.sampled_from([W - 0.5, H - 0.5, W, H, 0, -0.0, 1e30, 1e39, math.nan, math.inf, -math.inf]))
    with np.errstate(all="ignore"):
        return draw(hnp.arrays(np.float64, shape, elements=values)).astype(dtype)


@st.composite
def labels_for(draw, n):
    length = draw(st.sampled_from([n, n, n, n + 1, max(n - 1, 0)]))
    dtype = draw(st.one_of(st.sampled_from([np.int64, np.bool_]), _ARRAY_DTYPES))
    if dtype in (np.str_, object):
        return np.full(length, draw(st.sampled_from(["1", None, 1])), dtype=dtype)
    values = draw(st.lists(st.sampled_from([0, 1, 0, 1, 2, -1, 0.7, 0.5]), min_size=length, max_size=length))
    with np.errstate(all="ignore"):
        return np.array(values, np.float64).astype(dtype)


def _coords_ok(c):
    if c.dtype.kind not in "iuf" or c.ndim != 2 or c.shape[1] != 2 or len(c) == 0:
        return False
    xy = c.astype(np.float64)
    return bool(np.all(np.isfinite(xy)) and np.all((xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0)
                                                  & (xy[:, 1] < H)))


def _labels_ok(lab, n):
    return (lab.ndim == 1 and len(lab) == n and lab.dtype.kind in "biu"
            and bool(np.all((lab.astype(np.int64) == 0) | (lab.astype(np.int64) == 1))))


@FAST
@given(data=st.data())
def test_any_point_coords_and_labels(predictor, data):
    c = data.draw(coords())
    n = len(c) if c.ndim >= 1 else 0
    lab = data.draw(labels_for(n))
    empty = c.shape in ((0,), (0, 2)) and c.dtype.kind in "iuf"
    expected = None if _coords_ok(c) else "point_coords"
    if expected is None and not _labels_ok(lab, len(c)):
        expected = "point_labels"
    if empty:  # no clicks and no mask: nothing to predict from (after the labels check)
        labels_ok = lab.ndim == 1 and len(lab) == 0 and lab.dtype.kind in "biuf"  # np.zeros(0) is float
        expected = "point_coords" if labels_ok else "point_labels"
    try:
        result = predictor.predict(c, lab)
    except ivos.InvalidInput as e:
        assert expected is not None, e
        assert str(e).startswith(expected), (expected, str(e))
        return
    assert expected is None, (c, lab)
    _valid_mask(result.mask)
    x, y = c.astype(np.float64)[-1]
    assert result.mask[int(math.floor(y)), int(math.floor(x))] == int(lab[-1])  # the last click wins its pixel


# ---- mask_input -----------------------------------------------------------------------
@st.composite
def masks(draw):
    shape = draw(st.sampled_from([(H, W), (H, W), (H, W), (W, H), (H, W, 1), (H + 1, W), (H,), (0, 0)]))
    dtype = draw(st.one_of(st.sampled_from([np.uint8, np.bool_]), _DTYPES))
    top = draw(st.sampled_from([1, 1, 2, 255]))
    arr = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, top))).astype(dtype)
    if arr.ndim == 2 and draw(st.booleans()):
        arr = np.ascontiguousarray(arr[::-1, ::-1])[::-1, ::-1]  # the same mask, as a non-contiguous view
    return arr


@FAST
@given(mask=st.one_of(masks(), st.none(), st.just([[0] * W] * H)), with_click=st.booleans())
def test_any_mask_input(predictor, mask, with_click):
    valid = mask is None or (isinstance(mask, np.ndarray) and mask.shape == (H, W)
                             and mask.dtype in (np.uint8, np.bool_) and int(mask.max(initial=0)) <= 1)
    points = np.array([[W - 0.5, H / 2]]) if with_click else np.zeros((0, 2))
    labels = np.array([0]) if with_click else np.zeros(0, np.int64)
    try:
        result = predictor.predict(points, labels, mask_input=mask)
    except ivos.InvalidInput as e:
        if valid:  # only legitimate failure: nothing at all to predict from
            assert mask is None and not with_click and str(e).startswith("point_coords is empty"), e
        else:
            assert str(e).startswith("mask_input"), e
        return
    assert valid
    _valid_mask(result.mask)
    if with_click:
        assert result.mask[H // 2, W - 1] == 0


# ---- model.json fields ----------------------------------------------------------------
_FIELD_PATHS = [
    ("format",), ("format_version",), ("name",), ("version",), ("task",), ("inputs",), ("inputs", 0),
    ("inputs", 0, "name"), ("inputs", 0, "shape"), ("inputs", 0, "shape", 2), ("inputs", 1, "dtype"),
    ("inputs", 2, "shape", 1), ("outputs",), ("outputs", 0, "shape", 3), ("outputs", 0, "dtype"),
    ("outputs", 0, "name"),
    ("normalization",), ("normalization", "mean"), ("normalization", "std"), ("normalization", "std", 1),
    ("normalization", "mean", 0), ("working_size",), ("working_size", 0), ("working_size", 1),
    ("click_encoding",), ("click_encoding", "kind"), ("click_encoding", "sigma"), ("artifacts",),
    ("artifacts", "onnx"), ("artifacts", "torch"), ("artifacts", "onnx_int8"), ("postprocess",),
    ("postprocess", "crf"), ("postprocess", "flip"), ("postprocess", "crf_params"),
    ("postprocess", "crf_params", "iterations"), ("postprocess", "crf_params", "srgb"),
]
_JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.sampled_from([0, -1, -64, 64, 32, 10 ** 12]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "float32", "gaussian", "model.onnx",
                                                                     "click-refinement", "osvos", "x"]),
    st.lists(st.integers(-2, 70), max_size=5), st.lists(st.floats(-1, 2), max_size=4),
    st.dictionaries(st.sampled_from(["name", "shape", "dtype", "kind", "sigma", "crf"]), st.integers(0, 3),
                    max_size=3))
_DELETE = object()


def _mutate(card, path, value):
    target = card
    for key in path[:-1]:
        target = target[key]
    last = path[-1]
    if value is _DELETE:
        if isinstance(target, dict):
            target.pop(last, None)
        else:
            del target[last]
    elif isinstance(target, dict) or last < len(target):
        target[last] = value


@pytest.fixture(scope="module")
def fuzz_dir(tiny_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "bundle"
    shutil.copytree(tiny_bundle, out)
    card = json.loads((out / "model.json").read_text())
    card["postprocess"] = {"crf": False, "flip": False, "crf_params": {"iterations": 2, "srgb": 5.0}}
    return out, card


@FAST
@given(path=st.sampled_from(_FIELD_PATHS), value=st.one_of(st.just(_DELETE), _JSON_VALUES))
def test_any_model_json_field(fuzz_dir, path, value):
    folder, base = fuzz_dir
    card = copy.deepcopy(base)
    _mutate(card, path, value)
    (folder / "model.json").write_text(json.dumps(card))
    try:
        model = ivos.load(folder, backend="ort", threads=1)
    except ivos.ModelError as e:
        message = str(e)
        assert "model.json" in message and path[0] in message, (path, value, message)
        return
    except ivos.BackendUnavailable as e:  # e.g. the torch artifact removed and nothing else: names a package
        assert "install" in str(e).lower()
        return
    try:
        p = ivos.ImagePredictor(model)
    except ivos.InvalidInput as e:  # a valid bundle of another task
        assert str(e).startswith("model must be a click-refinement bundle"), e
        return
    p.set_image(np.full((H, W, 3), 120, np.uint8))
    result = p.add_click(3, 4, True)
    _valid_mask(result.mask)
    assert result.mask[4, 3] == 1


@FAST
@given(x=st.floats(0, W, exclude_max=True), y=st.floats(0, H, exclude_max=True), positive=st.booleans())
def test_every_inside_point_clamps_its_pixel(predictor, x, y, positive):
    """The documented convention: a point in [j, j + 1) x [i, i + 1) is in pixel image[i, j],
    and that pixel always carries the click's label."""
    predictor.reset()
    mask = predictor.add_click(x, y, positive).mask
    assert mask[int(y), int(x)] == int(positive)
