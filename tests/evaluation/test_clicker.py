"""The RITM simulated user (ivos.evaluation.clicker) on small synthetic masks."""
import numpy as np
import pytest

from ivos.errors import InvalidInput
from ivos.evaluation.clicker import Click, next_click


def rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_first_click_is_interior_most_point():
    # 9x15 block: the farthest points from its boundary form the middle row's central span;
    # distance 5 to the top/bottom, the first in row-major order is at row 14, column 15.
    gt = rect(30, 40, 10, 19, 10, 25)
    c = next_click(gt, None, is_first=True)
    assert c == Click(x=14, y=14, positive=True)


def test_first_click_uses_padded_border():
    # An object touching the image border: without padding the border would look interior.
    gt = rect(20, 20, 0, 20, 0, 6)
    c = next_click(gt, None, is_first=True)
    assert c.positive and c.x in (2, 3)


def test_false_negative_gives_positive_click_inside_largest_region():
    gt = rect(40, 60, 5, 35, 5, 55)
    pred = gt.copy()
    pred[10:14, 10:14] = False   # small FN hole
    pred[15:31, 30:46] = False   # big FN hole: 16x16
    c = next_click(gt, pred)
    assert c.positive
    assert 15 <= c.y < 31 and 30 <= c.x < 46


def test_false_positive_gives_negative_click():
    gt = rect(40, 60, 5, 20, 5, 20)
    pred = gt | rect(40, 60, 22, 38, 30, 50)
    c = next_click(gt, pred)
    assert not c.positive
    assert pred[c.y, c.x] and not gt[c.y, c.x]
    assert 22 <= c.y < 38 and 30 <= c.x < 50


def test_ignore_pixels_never_clicked():
    gt = rect(30, 30, 5, 25, 5, 25)
    ignore = np.zeros_like(gt)
    ignore[:, :18] = True          # most of the object is ignored
    c = next_click(gt, np.zeros_like(gt), ignore)
    assert not ignore[c.y, c.x] and c.positive
    # everything wrong is ignored: nothing to correct
    assert next_click(gt, np.zeros_like(gt), np.ones_like(gt)) is None


def test_perfect_prediction_gives_none_and_clicked_pixels_are_skipped():
    gt = rect(10, 10, 2, 8, 2, 8)
    assert next_click(gt, gt) is None
    first = next_click(gt, None, is_first=True)
    second = next_click(gt, None, is_first=True, clicked=[first])
    assert second != first and gt[second.y, second.x]


def test_deterministic_and_validated():
    rng = np.random.default_rng(0)
    gt = rng.random((25, 25)) > 0.5
    pred = rng.random((25, 25)) > 0.5
    assert next_click(gt, pred) == next_click(gt, pred)
    with pytest.raises(InvalidInput, match="pred"):
        next_click(gt, pred[:5])
