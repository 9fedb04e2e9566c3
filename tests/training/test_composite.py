"""Copy-paste composites (training.composite): small objects at many scales, occluders."""
import numpy as np
import pytest

from training import data
from training.composite import MIN_VISIBLE_PX, SHARE_RANGE, cut_object, make_composite
from training.interactions import first_interaction
from training.train import parse_args, sample_views


def _cache():
    rng = np.random.default_rng(0)
    entries = []
    for k in range(4):
        labels = np.zeros((90, 120), np.uint16)
        labels[10 + k:60, 20:70 + k] = 1
        labels[60:85, 80:115] = 2
        image = rng.integers(0, 255, (90, 120, 3), np.uint8)
        image[labels == 1] = (200, 30, 30)
        entries.append(data.Entry(image, labels, [(1,), (2,)], "test", f"t{k}"))
    return data.Cache(train={"davis": entries[:2], "bsds": entries[2:], "coco": []})


def test_cut_object_is_the_tight_crop():
    cache = _cache()
    rgb, mask = cut_object(cache.train["davis"][0], 0)
    assert mask.shape == rgb.shape[:2] == (50, 50) and mask.all()


def test_composites_hold_small_and_large_visible_objects():
    cache, rng = _cache(), np.random.default_rng(1)
    shares = []
    for _ in range(40):
        view = make_composite(cache, 96, rng)
        assert view is not None and view.image.shape == (96, 96, 3) and view.image.dtype == np.uint8
        assert view.gt.sum() >= MIN_VISIBLE_PX and not (view.gt & view.others).any()
        shares.append(view.gt.mean())
        clicks, strokes = first_interaction(view, rng)
        pos = clicks[clicks[:, 2] == 1]
        assert len(pos) or any(label == 1 for _, label in strokes)
    shares = np.array(shares)
    assert shares.min() < 0.02 and shares.max() > 0.05 and shares.max() <= SHARE_RANGE[1] * 1.2


def test_sample_views_mixes_composites_in():
    cache, rng = _cache(), np.random.default_rng(2)
    views = sample_views(cache, 12, 64, rng, composite=1.0)
    assert len(views) == 12 and any(v.others.any() for v in views)
    assert parse_args(["--name", "x"]).composite_fraction == 0.0
    assert parse_args(["--name", "x", "--composite-fraction", "0.5"]).composite_fraction == 0.5


def test_composite_max_share_widens_the_objects_size_range(capsys):
    cache, rng = _cache(), np.random.default_rng(3)
    shares = np.array([make_composite(cache, 96, rng, max_share=0.6).gt.mean() for _ in range(60)])
    assert shares.max() > SHARE_RANGE[1] * 1.2 and shares.max() <= 0.6 * 1.2 and shares.min() < 0.02
    assert parse_args(["--name", "x"]).composite_max_share == SHARE_RANGE[1]
    with pytest.raises(SystemExit):
        parse_args(["--name", "x", "--composite-max-share", "1.5"])
    assert "--composite-max-share" in capsys.readouterr().err
