"""crf_click: --crf-param changes the cached CRF only; the reference keeps the bundle's."""
import json

import pytest

import ivos
from ivos.bench import crf_click

GRABCUT = ivos.datasets_root() / "GrabCut" if ivos.datasets_root() else None


@pytest.mark.skipif(GRABCUT is None or not GRABCUT.is_dir(), reason="needs ../shared/datasets/GrabCut")
def test_crf_param_overrides_the_cached_side_only(tmp_path):
    out = tmp_path / "r.json"
    assert crf_click.main(["--datasets", "GrabCut", "--limit", "1", "--clicks", "2",
                           "--crf-param", "srgb=7.5", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    env = report["environment"]
    assert env["crf"]["srgb"] == 7.5
    assert env["reference_crf"]["srgb"] != 7.5
    assert report["results"]["GrabCut"]["clicks"] == 2


def test_bad_crf_param_is_a_clear_error(capsys):
    assert crf_click.main(["--crf-param", "gaussian=0"]) == 2
    assert "--crf-param must be NAME=VALUE" in capsys.readouterr().err
