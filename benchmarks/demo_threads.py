"""Wall time of the README's main job (``ivos segment demo``) per thread setting, on an idle
machine and beside other CPU-heavy processes: the measurement behind the default thread policy.

Each run is a fresh ``ivos segment demo`` process (models loaded, fine-tuned, propagated,
everything written), timed end to end. "Load" runs start N busy-loop processes first (one
core each, normal priority), the situation of a shared server or a laptop compiling.

Usage::

    python -m ivos.bench.demo_threads --threads 0 1 2 --load 0 1 2 --repeat 1 --out results.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY_LOOP = "while True: pass"


def demo_command(out_dir: Path | str, threads: int | None = None) -> list[str]:
    """The README's main job: ``ivos segment demo`` with the demo clip's clicks, writing into
    ``out_dir`` without the overlay video; with ``--threads threads`` unless None (default)."""
    from ivos.cli import DEMO_CLIP

    clip = json.loads(DEMO_CLIP.with_suffix(".json").read_text())
    clicks = [a for c in clip["clicks"] for a in ("--click", f"{c['x']},{c['y']},{c['frame']}")]
    cmd = [sys.executable, "-m", "ivos.cli", "segment", "demo", *clicks, "--out", str(out_dir), "--no-overlay"]
    return cmd if threads is None else [*cmd, "--threads", str(threads)]


def run_demo(threads: int, out_dir: Path, spinning: str | None = None) -> float:
    """Seconds of one ``ivos segment demo`` run with ``--threads threads`` (and, when given,
    ONNX Runtime's thread spinning switched by ``IVOS_ORT_SPINNING``)."""
    cmd = demo_command(out_dir, threads)
    t0 = time.perf_counter()
    env = dict(os.environ, **({} if spinning is None else {"IVOS_ORT_SPINNING": spinning}))
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[0, 1, 2], help="--threads values to time (0 = default)")
    p.add_argument("--load", type=int, nargs="+", default=[0, 2], help="busy processes beside the run")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--spinning", nargs="+", default=[None], help="IVOS_ORT_SPINNING values to compare (0 / 1)")
    p.add_argument("--out", type=Path, default=None, help="markdown file to write (default: print)")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for load in args.load:
            hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(load)]
            try:
                for threads in args.threads:
                    for spin in args.spinning:
                        times = [run_demo(threads, Path(tmp) / "out", spin) for _ in range(args.repeat)]
                        rows.append((load, threads, spin, min(times), max(times)))
                        print(f"load {load} threads {threads} spinning {spin}: {min(times):.1f} s", file=sys.stderr)
            finally:
                for h in hogs:
                    h.kill()
    lines = [f"command: `python -m ivos.bench.demo_threads {' '.join(sys.argv[1:] if argv is None else argv)}`",
             "", f"machine: {platform.platform()}, {os.cpu_count()} logical CPUs", "",
             "| busy processes beside | --threads | ORT spinning | wall s (best) | wall s (worst) |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {load} | {threads if threads else '0 (default)'} | {'default' if spin is None else spin} | "
              f"{lo:.1f} | {hi:.1f} |" for load, threads, spin, lo, hi in rows]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
