"""``ivos.bench.bad_inputs`` (the table of bad inputs, issue 12): every case gives the kind of
outcome it names (a documented ivos error, or a checked acceptance), nothing raises out of
the runner, and the table covers the issue's list. The cases that run a whole ``ivos segment``
are skipped but one (unpadded frame names), to stay fast."""
import pytest

pytest.importorskip("onnxruntime", reason="the bundle and predictor cases load ivos-cpu (pip install 'ivos[cpu]')")

from ivos.bench.bad_inputs import CASES, Case, Outcome, Row, render_markdown, run_case, run_cases  # noqa: E402
from ivos.runtime.model import shipped_bundles  # noqa: E402


def _named(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def _report(rows) -> str:
    return "\n".join(f"{r.case.name}: expected {r.case.expect}, got {r.outcome.kind}: {r.outcome.text[:300]}"
                     for r in rows if not r.ok)


def test_every_quick_case_gives_the_expected_kind(tmp_path):
    rows = run_cases([c for c in CASES if not c.slow], tmp_path)
    assert len(rows) >= 25
    assert not [r for r in rows if r.outcome.kind.startswith("UNEXPECTED")], _report(rows)
    assert all(r.ok for r in rows), _report(rows)
    by_name = {r.case.name: r.outcome for r in rows}
    # a few outcomes in detail: the failure comes before any work, the fallback says so
    out_file = by_name["`--out` names an existing FILE"].text
    assert "exit 2" in out_file and "0 frame decodes, 0 bundle loads" in out_file and "file untouched" in out_file
    assert "0 bundle loads" in by_name["frame folder with mixed sizes"].text
    assert "precision fp32" in by_name["corrupt model.int8.onnx, default precision"].text
    assert "warning logged" in by_name["corrupt model.int8.onnx, default precision"].text
    assert all(name in by_name["unknown bundle name"].text for name in shipped_bundles())
    assert "too large" in by_name["20000x20000 image"].text


def test_a_segment_run_that_is_accepted_is_checked(tmp_path):
    row = run_case(_named("unpadded frame names"), tmp_path)
    assert row.ok, (row.outcome.kind, row.outcome.text)
    assert "1.png 2.png 10.png" in row.outcome.text and row.outcome.text.startswith("exit 0")


def test_an_unexpected_exception_is_recorded_not_raised(tmp_path):
    def broken(ctx):
        raise ZeroDivisionError("boom")

    def wrong(ctx):
        return Outcome("InvalidInput", "exit 2: ivos: error: InvalidInput: x")

    row = run_case(Case("s", "broken", "raises", "accepted", broken), tmp_path)
    assert row.outcome == Outcome("UNEXPECTED ZeroDivisionError", "boom") and not row.ok
    assert not run_case(Case("s", "wrong kind", "refused", "accepted", wrong), tmp_path).ok


def test_the_table_covers_the_issue_and_starts_with_its_command():
    names = {c.name for c in CASES}
    for needed in ("frame folder with mixed sizes", "corrupt frame (garbage bytes)", "truncated JPEG frame",
                   "`--out` names an existing FILE", "unpadded frame names", "folder frame rate `--fps 12.5`",
                   "garbage model.onnx, `precision='fp32'`", "truncated model.onnx",
                   "card declares 256 for a 320 network", "corrupt model.int8.onnx, default precision",
                   "corrupt model.int8.onnx, `precision='int8'`", "`device='cuda'` on a machine without CUDA",
                   "unknown bundle name", "positive='no'", "positive=2", "positive=None", "ImagePredictor(None)",
                   "20000x20000 image", "click x = W - 0.5", "click x = W", "click x = NaN", "label 0.7",
                   "no torch installed, `--finetune auto`"):
        assert needed in names
    rows = [Row(c, Outcome(c.expect, "msg | with pipe"), 0.0) for c in CASES]
    text = render_markdown(rows, "python -m ivos.bench.bad_inputs --out x.md")
    head = text.splitlines()[:6]
    assert "    python -m ivos.bench.bad_inputs --out x.md" in head
    assert sum(line.startswith("| ") and line.split("|")[1].strip().isdigit() for line in text.splitlines()) \
        == len(CASES)
    assert "msg \\| with pipe" in text  # cells cannot break the table
