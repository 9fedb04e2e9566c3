"""``ivos-bench click --variant``: the model once more with predictor settings overridden
(old vs new settings side by side in one run)."""
import argparse

import pytest

import ivos
from ivos.bench.click import _check_variant_keys, _segmenters, add_arguments
from ivos.bench.segmenters import parse_variant


def test_parse_variant():
    assert parse_variant("before:crf_min_area=0,refocus_below=0.0") == ("before", {"crf_min_area": 0,
                                                                                   "refocus_below": 0.0})
    assert parse_variant("plain:crf=false,min_zoom_side=32,flip=null") == ("plain", {"crf": False,
                                                                                    "min_zoom_side": 32, "flip": None})
    assert parse_variant("same:") == ("same", {})
    for bad in ("nocolon", ":x=1", "a/b:x=1", "v:x", "v:x=yes"):
        with pytest.raises(ValueError):
            parse_variant(bad)


def test_unknown_keys_are_refused():
    _check_variant_keys({"v": {"crf_min_area": 0, "refocus_below": 0.1, "min_zoom_side": 64}})
    with pytest.raises(ivos.InvalidInput, match="bogus is not an ImagePredictor setting"):
        _check_variant_keys({"v": {"bogus": 1}})


def test_variant_rows_follow_the_model_rows(tiny_bundles):
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--model", str(tiny_bundles["click"]), "--threads", "1",
                         "--variant", "before:crf_min_area=0,refocus_below=0", "--variant", "wide:zoom_expansion=2"])
    segs, _ = _segmenters(args)
    assert [s.name for s in segs] == ["model", "model+crf", "model/before", "model/before+crf", "model/wide",
                                      "model/wide+crf"]
    assert segs[5].predictor.settings.zoom_expansion == 2.0 and segs[5].predictor.settings.crf.enabled
    args = p.parse_args(["--model", str(tiny_bundles["click"]), "--variant", "v:bogus=1"])
    with pytest.raises(ivos.InvalidInput, match="--variant v: bogus"):
        _segmenters(args)
