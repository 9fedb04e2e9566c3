"""Small pieces of the benchmark drivers: the A/B driver's metric paths and the profile tables."""
import pytest

from ivos.bench.ab import metric
from ivos.bench.profiling import FunctionProfile, profile_markdown


def test_ab_metrics_are_top_level_keys_or_dotted_paths():
    out = {"ort_p50_ms": 12.5, "summary": {"frame_ms": {"p50": 101.0}}, "a.b": 3}
    assert metric(out, "ort_p50_ms") == 12.5
    assert metric(out, "summary.frame_ms.p50") == 101.0
    assert metric(out, "a.b") == 3.0  # a key with a dot is taken as it is
    with pytest.raises(KeyError):
        metric(out, "summary.frame_ms.p90")


def _busy(n: int) -> int:
    return sum(i * i for i in range(n))


def test_profile_reports_the_functions_that_ran_inside_its_blocks():
    profile = FunctionProfile()
    with profile:
        _busy(200_000)
    _busy(10)  # outside: not counted
    rows = profile.top(5)
    assert 1 <= len(rows) <= 5
    names = [r["function"] for r in rows]
    assert any("_busy" in n or "genexpr" in n for n in names)
    busy = next(r for r in rows if "_busy" in r["function"] or "genexpr" in r["function"])
    assert busy["calls"] >= 1 and busy["self_ms"] > 0 and 0 < busy["self_share"] <= 1
    table = profile_markdown(rows, "profile: test")
    assert table.startswith("**profile: test**") and table.count("\n") == len(rows) + 3
