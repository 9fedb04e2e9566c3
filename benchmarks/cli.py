"""``ivos-bench``: one subcommand per benchmark. Subcommands import their heavy dependencies
only when run, so ``--help`` works without them."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

DESCRIPTION = ("ivos benchmarks: one subcommand per benchmark (ivos-bench SUBCOMMAND --help for its options). "
               "Results go to JSON + markdown, with the command and the environment recorded.")

# subcommand -> (module in ivos.bench, one-line help). Each module defines
# ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS = {
    "ops": ("ops", "click rendering and dense CRF: numpy vs C++ vs CUDA vs pydensecrf2"),
    "click": ("click", "NoC@85/90 and mIoU per click (RITM clicker): GrabCut baseline vs model bundles"),
    "video": ("video", "DAVIS J from GT / clicked first frames, worst-frame correction vs GrabCut, fine-tune s, ms/frame"),
    "parity": ("parity", "per-sample NoC agreement of two ivos-bench click runs (ORT vs torch, int8 vs float)"),
    "compare": ("compare", "is click network B better than A? paired NoC differences per held-aside set and their "
                           "union, with bootstrap intervals"),
    "crf-click": ("crf_click", "the click path's cached CRF vs the uncached one: label agreement and CRF ms per click"),
    "video-speed": ("video_speed", "time from Propagate to the last frame, ms per frame, 2-object cost: old vs new propagation"),
    "objects": ("objects", "cost per extra object in VideoPredictor: fine-tune s and ms per frame for 1, 2, 4 objects"),
    "latency": ("latency", "click -> mask latency per stage: ORT vs torch, with/without CRF, 480x854 and 1080x1920"),
}


def main(argv: list[str] | None = None) -> int:
    from ivos._cli_help import version

    parser = argparse.ArgumentParser(prog="ivos-bench", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(f"ivos.bench.{module}").add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    module = importlib.import_module(f"ivos.bench.{SUBCOMMANDS[args.command][0]}")
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
