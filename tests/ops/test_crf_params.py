"""``--crf-param NAME=VALUE`` (``ivos-export click``, ``ivos-bench video``): parsed into
``dense_crf`` keywords, bad names and values refused."""
import pytest

from ivos.errors import InvalidInput
from ivos.ops.crf import parse_crf_params


def test_crf_params_parse_and_check():
    assert parse_crf_params(["srgb=5", "iterations=7", "compat_bilateral=3"]) == {
        "srgb": 5.0, "iterations": 7, "compat_bilateral": 3.0}
    assert parse_crf_params([]) == {}
    with pytest.raises(InvalidInput, match="NAME one of"):
        parse_crf_params(["rgb=5"])
    with pytest.raises(InvalidInput, match="NAME=VALUE"):
        parse_crf_params(["srgb"])
    with pytest.raises(InvalidInput, match="not a number"):
        parse_crf_params(["srgb=soft"])
