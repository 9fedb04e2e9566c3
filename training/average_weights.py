"""Averages click-network checkpoints of one run, element by element (a "model soup" of
checkpoints along one training trajectory; BatchNorm running statistics are averaged too,
integer buffers such as ``num_batches_tracked`` are taken from the last file). The output
keeps the last file's config and metadata (less its validation score), plus
``metadata["weight_average"]`` naming the inputs, so ``load_click_model`` and
``ivos-export click`` take it like any checkpoint:

    python -m training.average_weights runs/ivos-cpu-long/step34000_final.pt runs/ivos-cpu-long/final.pt \\
        --out runs/ivos-cpu-long/soup_34k_46k.pt
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch


def average_checkpoints(paths: list[Path]) -> dict:
    """The checkpoint dict whose floating-point tensors are the mean of ``paths``' (2 or more
    files of the same config)."""
    if len(paths) < 2:
        raise ValueError(f"need at least two checkpoints to average, got {len(paths)}")
    ckpts = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    out = copy.deepcopy(ckpts[-1])
    for p, c in zip(paths, ckpts):
        if c["config"] != out["config"] or c["state_dict"].keys() != out["state_dict"].keys():
            raise ValueError(f"{p} is not the same network as {paths[-1]} (config or tensor names differ)")
    for name, last in out["state_dict"].items():
        if last.is_floating_point():
            out["state_dict"][name] = torch.stack([c["state_dict"][name] for c in ckpts]).mean(dim=0)
    meta = {k: v for k, v in out["metadata"].items() if k != "val"}  # the last file's score, not the average's
    out["metadata"] = {**meta, "weight_average": [
        {"file": str(p), "stage": c["metadata"].get("stage"), "steps": c["metadata"].get("steps")}
        for p, c in zip(paths, ckpts)]}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint files of one network config")
    p.add_argument("--out", type=Path, required=True, help="output checkpoint file")
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)  # e.g. a new runs/<name>/ for ivos-export to find
    torch.save(average_checkpoints(args.checkpoints), args.out)
    print(f"wrote {args.out}: mean of {len(args.checkpoints)} checkpoints")


if __name__ == "__main__":
    main()
