"""The click path's CRF cache (ivos.postprocess.CrfCache): lattices reused while the view
region stays (grown by a margin), rebuilt when the image, the settings or the region change,
and results equal to a fresh CRF on the cached region."""
from __future__ import annotations

import numpy as np

from ivos.postprocess import (CRF_REGION_MARGIN, FRAME_CRF_REACH, FRAME_CRF_THRESHOLD, CrfCache, object_region,
                              refine_with_crf)
from ivos.settings import CrfSettings

SETTINGS = CrfSettings.merged(True, {"sxy_bilateral": 40.0, "srgb": 5.0, "compat_bilateral": 3.0}, 4000)


def _scene(seed: int, h: int = 120, w: int = 160):
    """A two-colour image with a disc and a noisy foreground probability of the disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 3) ** 2
    image = np.where(disc[..., None], [200, 60, 40], [30, 90, 160]) + rng.normal(0, 12, (h, w, 3))
    prob = np.clip(0.5 + 0.35 * (disc - 0.5) + rng.normal(0, 0.2, (h, w)), 0, 1)
    return np.clip(image, 0, 255).astype(np.uint8), prob.astype(np.float32)


def test_cache_reuses_while_the_view_stays_and_rebuilds_when_it_changes():
    image, prob = _scene(0)
    cache = CrfCache()
    first = cache.plan(image, (40, 20, 120, 100), SETTINGS)
    assert cache.builds == 1
    assert cache.plan(image, (41, 21, 119, 100), SETTINGS) is first  # a view a pixel smaller
    assert cache.plan(image, (38, 19, 121, 101), SETTINGS) is first  # inside the margin
    assert cache.builds == 1
    cache.plan(image, (0, 0, 160, 120), SETTINGS)  # larger than the cached region
    cache.plan(image, (60, 40, 90, 70), SETTINGS)  # much smaller than the cached region
    other = CrfSettings.merged(True, {"srgb": 7.0}, 4000)
    cache.plan(image, (60, 40, 90, 70), other)  # other parameters
    cache.plan(image.copy(), (60, 40, 90, 70), other)  # another image object
    assert cache.builds == 5
    cache.clear()
    cache.plan(image, (60, 40, 90, 70), other)
    assert cache.builds == 6


def test_cached_result_equals_a_fresh_crf_on_the_grown_region():
    """A cache hit gives exactly what refine_with_crf computes without a cache on the region
    the cache built (the view grown by CRF_REGION_MARGIN): reuse changes nothing."""
    image, prob = _scene(1)
    roi = (40, 20, 120, 100)
    cache = CrfCache()
    region = cache.plan(image, roi, SETTINGS).region
    m = round(CRF_REGION_MARGIN * 80)
    assert region == (40 - m, 20 - m, 120 + m, 100 + m)
    for delta in (0.0, 0.1, -0.1):
        unary = np.clip(prob + delta, 0, 1).astype(np.float32)
        got, want = unary.copy(), unary.copy()
        refine_with_crf(image, got, (41, 21, 119, 99), SETTINGS, cache=cache)
        refine_with_crf(image, want, region, SETTINGS)
        np.testing.assert_array_equal(got, want)
    assert cache.builds == 1


def test_cache_changes_labels_only_near_the_region_edge():
    """The grown region sees a few more pixels (and may be downscaled a little more) than
    the view: labels agree with the uncached CRF on the view for almost every pixel."""
    image, prob = _scene(2)
    roi = (30, 10, 130, 110)
    for budget in (None, 4000):
        settings = CrfSettings.merged(True, SETTINGS.params, budget)
        cached, plain = prob.copy(), prob.copy()
        refine_with_crf(image, cached, roi, settings, cache=CrfCache())
        refine_with_crf(image, plain, roi, settings)
        x0, y0, x1, y1 = roi
        agree = np.mean((cached > 0.5)[y0:y1, x0:x1] == (plain > 0.5)[y0:y1, x0:x1])
        assert agree >= 0.98, (budget, agree)


def test_object_region_is_the_box_above_the_threshold_grown_by_the_kernel_reach():
    prob = np.zeros((300, 400), np.float32)
    prob[100:120, 150:190] = 0.9
    prob[130, 200] = FRAME_CRF_THRESHOLD / 2  # below the threshold: not part of the object
    reach = int(np.ceil(FRAME_CRF_REACH * SETTINGS.params["sxy_bilateral"]))
    assert object_region(prob, SETTINGS) == (150 - reach, 100 - reach, 190 + reach, 120 + reach)
    half = int(np.ceil(FRAME_CRF_REACH / 2 * SETTINGS.params["sxy_bilateral"]))
    assert object_region(prob, SETTINGS, FRAME_CRF_REACH / 2) == (150 - half, 100 - half, 190 + half, 120 + half)
    prob[0, 399] = 0.5  # the box reaches the corner: clipped to the map
    assert object_region(prob, SETTINGS) == (150 - reach, 0, 400, 120 + reach)
    assert object_region(np.zeros((30, 40), np.float32), SETTINGS) is None


def test_frame_crf_on_the_object_region_agrees_with_the_whole_frame():
    """A propagated frame's CRF on ``object_region`` gives the labels of the CRF on the whole
    frame: far from every pixel above the threshold the CRF cannot make foreground."""
    rng = np.random.default_rng(3)
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    blob = (xx - 200) ** 2 / 900 + (yy - 90) ** 2 / 400 < 1
    image = np.where(blob[..., None], [210, 80, 50], [40, 100, 150]) + rng.normal(0, 10, (h, w, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    prob = np.where(blob, 0.8, 0.005) + np.where(blob, 1, 0) * rng.normal(0, 0.1, (h, w))
    prob = np.clip(prob, 0, 1).astype(np.float32)
    settings = CrfSettings.merged(True, {"sxy_bilateral": 20.0, "srgb": 5.0, "compat_bilateral": 3.0}, None)
    region = object_region(prob, settings)
    assert region is not None and (region[2] - region[0]) * (region[3] - region[1]) < h * w / 2
    whole, part = prob.copy(), prob.copy()
    refine_with_crf(image, whole, (0, 0, w, h), settings)
    refine_with_crf(image, part, region, settings)
    assert np.mean((whole > 0.5) == (part > 0.5)) > 0.999
