"""A/B of this checkout against an earlier commit, side by side in one run: the same benchmark
command runs alternately (A-B, then B-A, ...) on the reference tree and on this one, so
drifting machine load hits both alike, and each named JSON metric is reported as medians and
the ratio this / reference.

The reference is a git worktree of the earlier commit (``git worktree add /tmp/ref REV``,
with this checkout's built ``engine/_C*.so`` copied into its ``engine/``); the driver makes a
package folder in which ``ivos`` is its ``engine/`` (``ivos.bench`` and ``ivos.export`` linked
in) and puts it first on ``PYTHONPATH`` for the reference runs.

    python -m ivos.bench.ab --ref /tmp/ref --rounds 4 --metrics 'ivos_lite0/ort_int8_p50_ms' \\
        -- ivos.bench.cli latency --model ivos-lite0 --backends ort-int8 --threads 1 --rounds 2 --json {json}

``{json}`` in the command is replaced by a fresh output file per run; ``--keep DIR`` keeps
every run's file as ``DIR/<side>-<round>.json``. A metric is a top-level key of that JSON or a
dotted path into it (``summary.frame_ms.p50``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def reference_path(tree: Path) -> Path:
    """A folder holding ``ivos`` -> ``tree/engine`` (with ``bench`` and ``export`` linked in)."""
    tree = tree.resolve()
    for name, target in (("bench", "benchmarks"), ("export", "export")):
        link = tree / "engine" / name
        if not link.exists():
            link.symlink_to(tree / target)
    folder = Path(tempfile.mkdtemp(prefix="ivos-ab-"))
    (folder / "ivos").symlink_to(tree / "engine")
    return folder


def run_once(command: list[str], env: dict, cwd: Path, keep: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        args = [a.replace("{json}", str(out)) for a in command]
        subprocess.run([sys.executable, "-m", *args], env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        text = out.read_text()
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(text)
    return json.loads(text)


def metric(out: dict, name: str) -> float:
    """The value of metric ``name``: a top-level key, else a dotted path (a.b.c)."""
    if name in out:
        return float(out[name])
    value = out
    for part in name.split("."):
        value = value[part]
    return float(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", type=Path, required=True, help="worktree of the reference commit")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--metrics", nargs="+", required=True,
                   help="keys of the command's JSON output (top-level, or dotted paths into it)")
    p.add_argument("--keep", type=Path, default=None, help="keep every run's JSON in this folder")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- MODULE ARGS... ({json}: the output file)")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    ref_env = {**os.environ, "PYTHONPATH": str(reference_path(args.ref))}
    sides = {"reference": (ref_env, Path(tempfile.gettempdir())), "this": (dict(os.environ), Path.cwd())}
    values: dict[str, dict[str, list[float]]] = {s: {m: [] for m in args.metrics} for s in sides}
    for r in range(args.rounds):
        for side in (("reference", "this") if r % 2 == 0 else ("this", "reference")):
            env, cwd = sides[side]
            out = run_once(command, env, cwd, None if args.keep is None else args.keep / f"{side}-{r + 1}.json")
            for m in args.metrics:
                values[side][m].append(metric(out, m))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"command: `python -m {' '.join(command)}`, {args.rounds} rounds alternating\n")
    print("| metric | reference (median) | this (median) | this / reference |\n|---|---|---|---|")
    for m in args.metrics:
        a, b = np.median(values["reference"][m]), np.median(values["this"][m])
        print(f"| {m} | {a:.4g} | {b:.4g} | {b / a:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
