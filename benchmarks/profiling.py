"""Top-function profiles for the benchmark reports (``--profile N`` of ``ivos-bench latency`` and
``ivos-bench video``).

cProfile sees Python functions and the calls they make into extensions (ONNX Runtime's run,
our ``_C`` ops, PIL, numpy), which is the granularity of the stages: the time spent inside
native code is charged to the call that entered it. The benchmarks profile an extra, untimed
pass, so the profiler's overhead never reaches the reported percentiles.
"""
from __future__ import annotations

import cProfile
import pstats
from pathlib import Path


class FunctionProfile:
    """Accumulates a cProfile over every ``with profile:`` block."""

    def __init__(self) -> None:
        self._profile = cProfile.Profile()

    def __enter__(self) -> "FunctionProfile":
        self._profile.enable()
        return self

    def __exit__(self, *exc) -> None:
        self._profile.disable()

    def top(self, n: int) -> list[dict]:
        """The ``n`` functions with the most self time: function ("file:line(name)", paths
        shortened to the package), calls, self_ms, cumulative_ms and self_share (of all
        profiled self time)."""
        stats = pstats.Stats(self._profile)
        entries = stats.stats  # (file, line, name) -> (primitive calls, calls, self s, cumulative s, callers)
        total = sum(v[2] for v in entries.values()) or 1.0
        rows = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
        return [{"function": _name(key), "calls": int(v[1]), "self_ms": round(v[2] * 1e3, 2),
                 "cumulative_ms": round(v[3] * 1e3, 2), "self_share": round(v[2] / total, 4)} for key, v in rows]


def _name(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":  # a built-in or an extension function
        return func
    parts = Path(file).parts
    for anchor in ("engine", "benchmarks", "site-packages"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1:]
            break
    return f"{'/'.join(parts)}:{line}({func})"


def profile_markdown(rows: list[dict], title: str) -> str:
    """A markdown table of ``FunctionProfile.top`` rows under a bold ``title`` line."""
    lines = [f"**{title}**", "", "| function | calls | self ms | share of self time | cumulative ms |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| `{r['function']}` | {r['calls']} | {r['self_ms']:.1f} | {100 * r['self_share']:.1f}% | "
              f"{r['cumulative_ms']:.1f} |" for r in rows]
    return "\n".join(lines)
