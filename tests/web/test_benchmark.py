"""``python -m ivos.bench.web_editor`` runs end to end on a short sequence (3 clicks, the tiny
OSVOS bundle) and writes a report whose figures are the page's own records."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_web_editor_benchmark_runs_and_reports(osvos_tiny, tmp_path):
    from ivos.bench.web_editor import click_sequence, find_browser, main

    if find_browser() is None:
        pytest.skip("no Chromium: apt-get install chromium chromium-driver")
    seq = click_sequence(5)
    assert seq[0][2] and [s[2] for s in seq[1:]] == [False, True, False, True]
    out = tmp_path / "web_editor.md"
    assert main(["--clicks", "3", "--warmup", "1", "--osvos-model", str(osvos_tiny), "--threads", "1",
                 "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["n_clicks"] == 3 and len(report["raw"]) == 3
    for r in report["raw"]:
        assert r["frame"] == 0 and not r["refined"]
        # the page's timeline of one click: paint after the response, the response after the server's work
        assert r["paint_ms"] >= r["request_ms"] + r["decode_ms"] + r["draw_ms"] - 1e-6
        assert r["request_ms"] > r["server_ms"] > 0
    text = out.read_text()
    assert text.startswith("# Web editor") and "Command: `python -m ivos.bench.web_editor --clicks 3" in text
    assert f"**{report['clicks']['paint_ms']['median']:.1f}**" in text
