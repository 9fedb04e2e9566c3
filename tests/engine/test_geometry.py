"""View boxes: the full view without a mask, a square zoom-in around mask and clicks, its
smallest side, and the switch back to the full view for large objects."""
import numpy as np
import pytest

from ivos.image.geometry import MIN_ZOOM_SIDE, ZOOM_EXPANSION, Box, full_view, zoom_box


def _mask(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def test_no_mask_gives_the_full_view():
    assert zoom_box(480, 854, None, np.zeros((1, 2), np.float32)) == full_view(480, 854) == Box(0, 0, 854, 480)


def test_zoom_box_is_a_square_around_mask_and_clicks():
    mask = _mask(480, 854, 100, 200, 300, 420)  # 120 x 100 object
    clicks = np.array([[430.0, 150.0]], np.float32)  # just right of it
    box = zoom_box(480, 854, mask, clicks)
    assert box.width == box.height == max(MIN_ZOOM_SIDE, int(np.ceil(131 * ZOOM_EXPANSION)))
    x0, y0, x1, y1 = box.x0, box.y0, box.x0 + box.width, box.y0 + box.height
    assert x0 <= 300 and x1 >= 431 and y0 <= 100 and y1 >= 200


def test_min_side_bounds_the_zoom_on_tiny_objects():
    mask = _mask(480, 854, 270, 283, 840, 853)  # a 13 px object at the border
    default = zoom_box(480, 854, mask, np.zeros((0, 2), np.float32))
    wide = zoom_box(480, 854, mask, np.zeros((0, 2), np.float32), min_side=200)
    assert default.width == MIN_ZOOM_SIDE and wide.width == 200
    c = MIN_ZOOM_SIDE / 2
    assert abs(default.x0 + c - 846.5) <= 1 and abs(default.y0 + c - 276.5) <= 1  # centred on the object


def test_large_objects_get_the_full_view():
    mask = _mask(480, 854, 10, 470, 50, 800)
    assert zoom_box(480, 854, mask, np.zeros((0, 2), np.float32)) == full_view(480, 854)


def test_zoom_expansion_scales_the_box_and_is_validated(tiny_bundle):
    mask = np.zeros((480, 854), bool)
    mask[200:260, 400:460] = True  # 60 px square
    none = np.zeros((0, 2), np.float32)
    assert zoom_box(480, 854, mask, none, expansion=2.0).width == 120
    assert zoom_box(480, 854, mask, none).width == int(np.ceil(60 * ZOOM_EXPANSION))
    import ivos

    model = ivos.load(tiny_bundle, backend="ort", threads=1)
    assert ivos.ImagePredictor(model, zoom_expansion=1.8).settings.zoom_expansion == 1.8
    with pytest.raises(ivos.InvalidInput, match="zoom_expansion"):
        ivos.ImagePredictor(model, zoom_expansion=0.5)
