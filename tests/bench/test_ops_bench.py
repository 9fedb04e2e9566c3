"""``ivos-bench ops --quick`` runs end to end and writes sane JSON."""
import json
from pathlib import Path

import pytest

from ivos.bench.cli import main


def test_ops_bench_quick_writes_sane_json(tmp_path, capsys):
    out = tmp_path / "ops.json"
    assert main(["ops", "--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert "| render_clicks | 480x854 | 20 | cpu |" in capsys.readouterr().out
    rows = report["rows"]

    def p50(op, impl, size, **match):
        return next(r["p50_ms"] for r in rows if r["op"] == op and r["impl"] == impl and r["size"] == size
                    and all(r.get(k) == v for k, v in match.items()))

    # the headline is the ratio of the rows' own p50s (numpy over C++, 480x854, 20 clicks)
    assert report["render_speedup_cpp_vs_numpy"] == pytest.approx(
        p50("render_clicks", "numpy", "480x854", clicks=20) / p50("render_clicks", "cpu", "480x854", clicks=20))
    assert {(r["impl"], r["clicks"]) for r in rows if r["op"] == "render_clicks" and r["size"] == "1080x1920"} \
        >= {("numpy", n) for n in (1, 5, 20)} | {("cpu", n) for n in (1, 5, 20)}
    for r in rows:
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["n"] >= 1
    assert report["environment"]["cpu_threads"] >= 1 and "build_info" in report["environment"]
    crf = [r for r in rows if r["op"] == "dense_crf"]
    if not crf:
        pytest.skip("DAVIS2016 not found: the CRF part was skipped (set IVOS_DATA_ROOT)")
    assert {r["size"] for r in crf} == {"480x854", "240x427"}
    if report["crf_speedup_vs_pydensecrf2"] is None:
        pytest.skip("pydensecrf2 not installed: no CRF reference")
    assert report["crf_speedup_vs_pydensecrf2"] == pytest.approx(
        p50("dense_crf", "pydensecrf2", "480x854") / p50("dense_crf", "ivos", "480x854"))
    assert 0.995 <= report["crf_agreement_vs_pydensecrf2"] <= 1.0


def test_ops_bench_times_another_build_beside_this_one(tmp_path, capsys):
    """--baseline-native: another _C (here a copy of this build's: the same file would be the
    same loaded library) joins the interleaved CRF timing; its output is compared with this
    build's (identical here)."""
    import shutil

    import ivos

    copy = tmp_path / "baseline" / Path(ivos._C.__file__).name
    copy.parent.mkdir()
    shutil.copy(ivos._C.__file__, copy)
    out = tmp_path / "ops.json"
    assert main(["ops", "--quick", "--baseline-native", str(copy), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = [r for r in report["rows"] if r["op"] == "dense_crf"]
    if not rows:
        pytest.skip("DAVIS2016 not found: the CRF part was skipped (set IVOS_DATA_ROOT)")
    baseline = [r for r in rows if r["impl"] == "ivos-baseline"]
    assert {r["size"] for r in baseline} == {"480x854", "240x427"}
    for r in baseline:
        assert r["max_abs_diff_vs_ivos"] == 0.0 and r["labels_equal_ivos"] == 1.0 and r["p50_ms"] > 0
    p50 = {r["impl"]: r["p50_ms"] for r in rows if r["size"] == "480x854"}
    assert report["crf_speedup_vs_baseline"] == pytest.approx(p50["ivos-baseline"] / p50["ivos"])
    assert "ivos-baseline (" in capsys.readouterr().out
