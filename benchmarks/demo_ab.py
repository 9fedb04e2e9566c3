"""Wall time of the README's main job (``ivos segment demo``), this checkout vs an earlier
commit, alternating: each run is a fresh process (models loaded, fine-tuned, propagated,
everything written but the overlay video) with the default threads.

    python -m ivos.bench.demo_ab --ref /tmp/ref --rounds 3 [--load 2]

``--load N`` runs N busy-loop processes beside every run (a machine shared with CPU-heavy
work). ``--ref`` is a git worktree of the earlier commit with this checkout's ``engine/_C*.so``
copied into its ``engine/`` (as for ``ivos.bench.ab``). Prints each run and a JSON summary
(medians and their ratio, this / reference).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .ab import reference_path
from .demo_threads import BUSY_LOOP, demo_command


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ivos.bench.demo_ab", description=__doc__.split("\n")[0])
    p.add_argument("--ref", type=Path, required=True, help="worktree of the reference commit")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--load", type=int, default=0, help="busy processes beside every run (default 0)")
    args = p.parse_args(argv)
    sides = {"reference": ({**os.environ, "PYTHONPATH": str(reference_path(args.ref))}, tempfile.gettempdir()),
             "this": (dict(os.environ), str(Path.cwd()))}
    times: dict[str, list[float]] = {side: [] for side in sides}
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.load)]
    try:
        for r in range(args.rounds):
            for side in (("reference", "this") if r % 2 == 0 else ("this", "reference")):
                env, cwd = sides[side]
                with tempfile.TemporaryDirectory() as out:
                    t0 = time.perf_counter()
                    subprocess.run(demo_command(out), check=True, capture_output=True, env=env, cwd=cwd)
                    times[side].append(time.perf_counter() - t0)
                print(f"round {r + 1} {side}: {times[side][-1]:.2f} s", flush=True)
    finally:
        for hog in hogs:
            hog.kill()
    ref, this = statistics.median(times["reference"]), statistics.median(times["this"])
    print(json.dumps({"reference_s": times["reference"], "this_s": times["this"], "median_reference_s": ref,
                      "median_this_s": this, "ratio": this / ref, "busy_processes": args.load,
                      "load_avg_after": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
