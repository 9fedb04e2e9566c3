"""``ivos-export click --crf-param``: parsed into the bundle's postprocess.crf_params."""
import pytest

pytest.importorskip("torch")

from ivos.errors import InvalidInput  # noqa: E402
from ivos.export.cli import _crf_params  # noqa: E402


def test_crf_params_parse_and_check():
    assert _crf_params(["srgb=5", "iterations=7", "compat_bilateral=3"]) == {
        "srgb": 5.0, "iterations": 7, "compat_bilateral": 3.0}
    assert _crf_params([]) == {}
    with pytest.raises(InvalidInput, match="NAME one of"):
        _crf_params(["rgb=5"])
    with pytest.raises(InvalidInput, match="NAME=VALUE"):
        _crf_params(["srgb"])
    with pytest.raises(InvalidInput, match="not a number"):
        _crf_params(["srgb=soft"])
