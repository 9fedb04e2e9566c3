"""``ivos-bench video`` with its ``--full-finetune`` baseline (backbone + head fine-tuned in torch).

That baseline needs the torch OSVOS network, which ``ivos.export`` defines and ``ivos.bench``
never imports (the packages meet only in the runtime ``ivos``). This entry point, run from a
checkout where both are at hand, hands ``ivos.bench.video.run`` the loader; every other option
is ``ivos-bench video``'s::

    python -m training.bench_video --full-finetune --sequences bus --json out.json
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ivos.bench import video

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "export" / "weights" / "osvos-lite0.pt"
"""The shipped default ``osvos-lite0`` bundle's torch weights (a checkout's ``export/weights``; not installed)."""


def load_osvos_network(weights: Path | None):
    """A fresh torch OSVOS network (``ivos.export.osvos.OsvosNet``) from ``weights`` (None:
    ``DEFAULT_WEIGHTS``)."""
    from ivos.export.osvos import load_osvos

    net, _ = load_osvos(weights or DEFAULT_WEIGHTS)
    return net


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.bench_video", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    video.add_arguments(parser)
    parser.set_defaults(prog=parser.prog)  # recorded as the report's command
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return int(video.run(args, osvos_network=load_osvos_network) or 0)


if __name__ == "__main__":
    sys.exit(main())
