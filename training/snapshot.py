"""A run cut short, as a weight file: the model of ``runs/<name>/last.pt`` (the resumable
checkpoint ``training.train`` writes every ``--ckpt-every`` steps) saved like ``final.pt``, so
that ``training.model_card`` can publish it and ``training.train --continue-from`` can
warm-restart it on a machine without the run folder:

    python -m training.snapshot --run runs/ivos-lite1-clean
    # -> runs/ivos-lite1-clean/stage2-step900.pt

The metadata is what ``final.pt`` would hold at that step (its ``steps`` is the step reached;
the data counts come from the run's ``stage1.pt``, the same data). Stage-1 checkpoints are
refused: ``--stage1-from`` wants a finished stage 1.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

from .model_card import run_args


def snapshot(run: Path) -> Path:
    """Writes ``run/stage2-step<N>.pt`` from ``run/last.pt``; returns its path.

    Raises:
        ValueError: the checkpoint is from stage 1, or neither it nor the run's train.log records
            the run's options.
    """
    import torch

    from ivos.export.checkpoint import save_click_model
    from ivos.export.models import MODEL_CONFIGS, build_model

    from .train import weights_metadata

    state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    if state["stage"] != 2:
        raise ValueError(f"{run / 'last.pt'} is a stage-{state['stage']} checkpoint (step {state['step']}): "
                         "publish stage 1 from stage1.pt once it ends")
    if "args" in state:  # the run's parsed options, recorded in last.pt since the ninth session
        args = SimpleNamespace(**state["args"])
    else:
        args = _logged_args(run)
    model = build_model(MODEL_CONFIGS[args.config])
    model.load_state_dict(state["model"])
    data = torch.load(run / "stage1.pt", map_location="cpu", weights_only=True)["metadata"]["data"]
    meta = weights_metadata(2, state["step"], args, state["wall_s"], data, state["val"])
    meta["planned_steps"] = args.stage2_steps
    out = run / f"stage2-step{state['step']}.pt"
    save_click_model(out, model, meta)
    return out


def _logged_args(run: Path) -> SimpleNamespace:
    """The options ``weights_metadata`` reads, from the ``args`` line of an older run's train.log
    (logged as strings; options the run predates get the values it ran with)."""
    from ivos.network_io import CLICK_SIGMA

    args = run_args(run)
    if not args:
        raise ValueError(f"{run / 'train.log'} has no 'args' line: not a training.train run")
    return SimpleNamespace(**{k: int(args[k]) for k in ("batch", "size", "seed", "threads", "stage2_steps")},
                           config=args["config"],
                           click_sigma=float(args.get("click_sigma", CLICK_SIGMA)),  # runs before the option: 5 px
                           iterative_clicks=int(args.get("iterative_clicks", 0)),
                           protocol_first_fraction=float(args.get("protocol_first_fraction", 0.0)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, required=True, help="run folder holding last.pt, stage1.pt and train.log")
    a = p.parse_args(argv)
    print(snapshot(a.run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
