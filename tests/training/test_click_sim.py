"""Click simulation (paper 2.1.1): every constraint checked on generated masks."""
import numpy as np
import pytest

from training import click_sim as cs


def _disk(h=120, w=160, cx=80, cy=60, r=30):
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _blob_scene(seed=0):
    """An irregular object (union of disks) and another object beside it."""
    rng = np.random.default_rng(seed)
    obj = np.zeros((120, 160), bool)
    for _ in range(4):
        obj |= _disk(cx=int(rng.integers(50, 110)), cy=int(rng.integers(40, 80)), r=int(rng.integers(12, 25)))
    other = _disk(cx=20, cy=20, r=14) & ~obj
    return obj, other


def _exact_dist(region):
    """Brute-force distance of each region pixel to the nearest non-region pixel."""
    ys, xs = np.nonzero(~region)
    out = np.zeros(region.shape)
    for y, x in zip(*np.nonzero(region)):
        out[y, x] = np.sqrt(((xs - x) ** 2 + (ys - y) ** 2).min())
    return out


def _pairwise_min(points):
    if len(points) < 2:
        return np.inf
    d = np.linalg.norm(points[:, None, :2] - points[None, :, :2], axis=2)
    return d[~np.eye(len(points), dtype=bool)].min()


@pytest.mark.parametrize("seed", range(5))
def test_positives_inside_with_margin_and_spacing(seed):
    obj, _ = _blob_scene(seed)
    clicks = cs.positive_clicks(obj, 10, np.random.default_rng(seed))
    assert clicks.shape == (10, 3) and clicks.dtype == np.float32
    assert np.all(clicks[:, 2] == 1)
    dist = _exact_dist(obj)
    xs, ys = clicks[:, 0].astype(int), clicks[:, 1].astype(int)
    assert np.all(dist[ys, xs] >= cs.D_MARGIN)
    assert _pairwise_min(clicks) >= cs.D_STEP


def test_positives_respect_previous_clicks():
    obj = _disk(r=10)
    prev = np.array([[80, 60, 1]], np.float32)
    clicks = cs.positive_clicks(obj, 50, np.random.default_rng(0), previous=prev)
    assert len(clicks) > 0
    assert np.linalg.norm(clicks[:, :2] - prev[:, :2], axis=1).min() >= cs.D_STEP


def test_no_room_gives_no_click():
    thin = np.zeros((50, 50), bool)
    thin[20:24, 5:45] = True  # 4 px wide: no pixel is 3 px from the boundary
    assert len(cs.positive_clicks(thin, 3, np.random.default_rng(0))) == 0


@pytest.mark.parametrize("strategy", [1, 3])
def test_negatives_in_hull_band(strategy):
    obj, _ = _blob_scene(1)
    clicks = cs.negative_clicks(obj, 8, np.random.default_rng(2), strategy)
    assert len(clicks) == 8 and np.all(clicks[:, 2] == 0)
    xs, ys = clicks[:, 0].astype(int), clicks[:, 1].astype(int)
    dist_to_obj = _exact_dist(~obj)
    assert np.all(~obj[ys, xs])
    assert np.all(dist_to_obj[ys, xs] >= cs.D_MARGIN) and np.all(dist_to_obj[ys, xs] <= cs.D_HULL)
    assert _pairwise_min(clicks) >= cs.D_STEP


def test_strategy3_spreads_more_than_random():
    obj = _disk()
    spread = {s: np.mean([_pairwise_min(cs.negative_clicks(obj, 5, np.random.default_rng(k), s)) for k in range(5)])
              for s in (1, 3)}
    assert spread[3] > 1.5 * spread[1]


def test_strategy2_lands_on_other_objects_and_falls_back():
    obj, other = _blob_scene(3)
    clicks = cs.negative_clicks(obj, 3, np.random.default_rng(0), 2, other_objects=other)
    assert len(clicks) > 0
    assert np.all(other[clicks[:, 1].astype(int), clicks[:, 0].astype(int)])
    fallback = cs.negative_clicks(obj, 3, np.random.default_rng(0), 2, other_objects=np.zeros_like(obj))
    band = cs.hull_band(obj)
    assert len(fallback) == 3 and np.all(band[fallback[:, 1].astype(int), fallback[:, 0].astype(int)])


def test_corrections_in_error_regions_spaced_and_labelled():
    gt = _disk(r=30)
    pred = _disk(cx=95, r=30)  # shifted: false negatives on the left, false positives on the right
    clicks = cs.correction_clicks(gt, pred, 20, np.random.default_rng(0))
    assert len(clicks) == 20
    xs, ys = clicks[:, 0].astype(int), clicks[:, 1].astype(int)
    pos = clicks[:, 2] == 1
    assert np.all((gt & ~pred)[ys[pos], xs[pos]])
    assert np.all((pred & ~gt)[ys[~pos], xs[~pos]])
    assert pos.any() and (~pos).any()
    assert _pairwise_min(clicks) >= cs.D_STEP


def test_corrections_none_when_prediction_is_perfect():
    gt = _disk()
    assert len(cs.correction_clicks(gt, gt.copy(), 5, np.random.default_rng(0))) == 0


@pytest.mark.parametrize("label", [0, 1])
def test_stroke_stays_inside_region(label):
    obj, _ = _blob_scene(4)
    region = obj if label else ~obj
    for seed in range(5):
        points, lab = cs.stroke(region, np.random.default_rng(seed), label)
        assert lab == label and points.ndim == 2 and points.shape[1] == 2 and len(points) >= 1
        dist = _exact_dist(region)
        for a, b in zip(points, points[1:] if len(points) > 1 else points):
            for t in np.linspace(0, 1, 50):
                x, y = np.round(a + t * (b - a)).astype(int)
                assert dist[y, x] >= cs.D_MARGIN


def test_deterministic_with_seed():
    obj, other = _blob_scene(5)

    def run(seed):
        rng = np.random.default_rng(seed)
        pos = cs.positive_clicks(obj, 4, rng)
        neg = np.concatenate([cs.negative_clicks(obj, 3, rng, s, other_objects=other) for s in cs.STRATEGIES])
        corr = cs.correction_clicks(obj, _disk(), 5, rng)
        return np.concatenate([pos, neg, corr]), cs.stroke(obj, rng, 1)[0]

    a, b, c = run(7), run(7), run(8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_unknown_strategy_rejected():
    with pytest.raises(ValueError):
        cs.negative_clicks(_disk(), 1, np.random.default_rng(0), 4)
