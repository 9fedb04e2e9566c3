"""Inputs the image predictor must refuse, and edge cases it must accept (issue 12):
click labels, the model argument, click coordinates at the image edges, flags, and the
image size limit. Each error is ``ivos.InvalidInput`` naming the argument."""
import math
import tracemalloc

import numpy as np
import pytest

import ivos
from ivos.image.geometry import Box
from ivos.image.predictor import MAX_IMAGE_PIXELS, Stroke

H, W = 40, 50


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return ivos.load(tiny_bundle, backend="ort", threads=1)


@pytest.fixture
def predictor(model):
    p = ivos.ImagePredictor(model, crf=False)
    rng = np.random.default_rng(0)
    p.set_image(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    return p


@pytest.mark.parametrize("positive", ["no", "yes", "", 2, -1, None, 0.5, 1.0, np.float32(0.7), [1], np.array([1]),
                                      np.int64(2)])
def test_positive_must_be_a_boolean_or_0_1(predictor, positive):
    with pytest.raises(ivos.InvalidInput, match=r"^positive must be True/False \(or 1/0\)"):
        predictor.add_click(10, 10, positive)
    with pytest.raises(ivos.InvalidInput, match=r"^positive must be"):
        predictor.add_stroke([[10, 10], [20, 20]], positive)
    assert predictor.result is None  # nothing joined the history


@pytest.mark.parametrize("positive, label", [(True, 1), (False, 0), (1, 1), (0, 0), (np.bool_(True), 1),
                                             (np.int64(0), 0), (np.uint8(1), 1)])
def test_positive_accepts_booleans_and_0_1(predictor, positive, label):
    assert predictor.add_click(10, 10, positive).mask[10, 10] == label


@pytest.mark.parametrize("labels", [[0.7], [1.0], np.array([0.0]), ["1"], [None], [2], [-1], np.array([1 + 0j]),
                                    [[1]], 1])
def test_point_labels_must_be_0_1_integers_or_booleans(predictor, labels):
    with pytest.raises(ivos.InvalidInput, match=r"^point_labels must"):
        predictor.predict([[10, 10]], labels)


@pytest.mark.parametrize("labels, label", [([True], 1), (np.array([False]), 0), (np.array([1], np.uint8), 1),
                                           ([0], 0)])
def test_point_labels_accepted(predictor, labels, label):
    assert predictor.predict([[10, 10]], labels).mask[10, 10] == label


@pytest.mark.parametrize("model_arg", [None, "ivos-cpu", 3, object()])
def test_predictor_needs_a_model(model_arg):
    with pytest.raises(ivos.InvalidInput, match=r"^model must be an ivos.Model"):
        ivos.ImagePredictor(model_arg)


def test_clicks_inside_the_last_pixel_are_accepted(predictor):
    """Continuous pixel coordinates: pixel image[i, j] spans j <= x < j + 1, so x = W - 0.5
    (a mouse position in the last column) is inside and that pixel is clamped."""
    r = predictor.add_click(W - 0.5, H - 0.5, True)
    assert r.mask[H - 1, W - 1] == 1
    r = predictor.add_click(0, 0, False)
    assert r.mask[0, 0] == 0
    r = predictor.predict(np.array([[W - 0.5, 3.25], [W - 1e-9, H - 1e-9]]), np.array([1, 1]))
    assert r.mask[3, W - 1] == 1 and r.mask[H - 1, W - 1] == 1


@pytest.mark.parametrize("x, y, name", [
    (W, 5, "x"), (5, H, "y"), (-0.01, 5, "x"), (5, -1, "y"), (math.nan, 5, "x"), (5, math.inf, "y"),
    (-math.inf, 5, "x"), (1e30, 5, "x"), (10 ** 400, 5, "x"), ("5", 5, "x"), (None, 5, "x"), (True, 5, "x"),
    (5, [5], "y"), (5, 1 + 2j, "y"), (np.float64(W), 5, "x"),
])
def test_bad_click_coordinates(predictor, x, y, name):
    with pytest.raises(ivos.InvalidInput, match=rf"^{name} must be"):
        predictor.add_click(x, y, True)
    assert predictor.result is None


@pytest.mark.parametrize("coords, fragment", [
    ([[W, 5]], "outside"), ([[5, -0.5]], "outside"), ([[np.nan, 5]], "NaN"), ([[10 ** 400, 5]], "real numbers"),
    ([["a", "b"]], "real numbers"), ([[True, False]], "real numbers"), ([[1, 2, 3]], "shape"), ([1, 2], "shape"),
    ([[1, 2], [3]], "shape (N, 2)"), (np.array([[1 + 1j, 2]]), "real numbers"), (None, "real numbers"),
])
def test_bad_point_coords(predictor, coords, fragment):
    with pytest.raises(ivos.InvalidInput, match=r"^point_coords") as e:
        predictor.predict(coords, [1])
    assert fragment in str(e.value)


def test_bad_strokes_and_views(predictor):
    with pytest.raises(ivos.InvalidInput, match=r"^strokes\[0\] must be an ivos.Stroke"):
        predictor.predict([[5, 5]], [1], strokes=[[[1, 1], [2, 2]]])
    with pytest.raises(ivos.InvalidInput, match=r"^strokes must be"):
        predictor.predict([[5, 5]], [1], strokes=Stroke(np.zeros((2, 2), np.float32), True))
    with pytest.raises(ivos.InvalidInput, match=r"^strokes\[0\]\.points has a point outside"):
        predictor.predict([[5, 5]], [1], strokes=[Stroke(np.array([[1, 1], [W, 2]], np.float32), True)])
    with pytest.raises(ivos.InvalidInput, match=r"^strokes\[0\]\.positive must be"):
        predictor.predict([[5, 5]], [1], strokes=[Stroke(np.array([[1, 1], [4, 2]], np.float32), "no")])
    for view in (Box(0.5, 0, 10, 10), Box(0, 0, 10 ** 6, 10 ** 6), Box(0, 0, 0, 10), (0, 0, 10, 10)):
        with pytest.raises(ivos.InvalidInput, match=r"^view must be a Box"):
            predictor.predict([[5, 5]], [1], view=view)


@pytest.mark.parametrize("kwargs, name", [
    (dict(crf="no"), "crf"), (dict(flip=0.5), "flip"), (dict(zoom=None), "zoom"), (dict(soft_strokes="yes"), "soft"),
    (dict(crf_params={"bogus": 1}), "crf_params"), (dict(crf_params={"srgb": -1}), "crf_params"),
    (dict(min_zoom_side=0), "min_zoom_side"), (dict(zoom_expansion="big"), "zoom_expansion"),
    (dict(max_image_pixels=0), "max_image_pixels"), (dict(max_image_pixels=1.5), "max_image_pixels"),
])
def test_bad_predictor_options(model, kwargs, name):
    """Before: bool("no") silently turned the CRF on; unknown crf_params failed at the first click."""
    with pytest.raises(ivos.InvalidInput, match=rf"^{name}"):
        ivos.ImagePredictor(model, **kwargs)


def test_predict_crf_flag_is_checked(predictor):
    with pytest.raises(ivos.InvalidInput, match=r"^crf must be"):
        predictor.predict([[5, 5]], [1], crf="off")


def test_image_size_limit(model):
    assert MAX_IMAGE_PIXELS == 50_000_000
    assert ivos.ImagePredictor(model).settings.max_image_pixels == MAX_IMAGE_PIXELS
    small = ivos.ImagePredictor(model, crf=False, max_image_pixels=1000)
    image = np.zeros((40, 30, 3), np.uint8)  # 1200 pixels
    with pytest.raises(ivos.InvalidInput) as e:
        small.set_image(image)
    message = str(e.value)
    assert message.startswith("image is too large") and "(40, 30, 3)" in message and "1,000" in message
    assert "max_image_pixels" in message
    unlimited = ivos.ImagePredictor(model, crf=False, max_image_pixels=None)
    unlimited.set_image(image)
    assert unlimited.add_click(3, 3, True).mask.shape == (40, 30)


def test_image_size_limit_module_default_is_read_at_creation(model, monkeypatch):
    import ivos.settings as settings_module

    monkeypatch.setattr(settings_module, "MAX_IMAGE_PIXELS", 100)
    p = ivos.ImagePredictor(model)
    with pytest.raises(ivos.InvalidInput, match="too large"):
        p.set_image(np.zeros((11, 10, 3), np.uint8))


def test_a_huge_image_is_refused_before_anything_full_size_is_allocated(model):
    """A 20000 x 20000 view of one pixel (no memory behind it, not contiguous): the size check
    comes before the contiguous copy (1.2 GB) that set_image would otherwise make."""
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3))
    p = ivos.ImagePredictor(model)
    tracemalloc.start()
    try:
        with pytest.raises(ivos.InvalidInput, match=r"image is too large.*\(20000, 20000, 3\).*400,000,000"):
            p.set_image(huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2 ** 20
