"""A small fusion decoder for the memory mode, cross-validated offline on the recordings of
``training.fusion_data``: per frame it reads the fine-tuned head's logits, the memory readout
and the flow-warped previous mask (working stride 4) and corrects the head's logits
(residual: zero output = the head as it is).

Offline score (no feedback into the next frame's prior): per held-out sequence, the mean IoU
at stride 4 of ``logits > 0`` against the ground truth, fused vs the head alone. Measured: the
decoder does not beat the head (0.802 vs 0.825, benchmarks/results/video_cv.md); kept to
score the next decoder the same way.

    python -m training.fusion_train --folds 3 --heads lp --steps 800
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from .video_cv import ROOT, all_sequences, folds_of

log = logging.getLogger("ivos.training")
LOGIT_SCALE = 5.0
"""Head logits enter the decoder divided by this (and clipped to +-3 after)."""


def build_decoder():
    import torch
    from torch import nn

    class Fusion(nn.Module):
        """(B, 3, h, w) [logits / LOGIT_SCALE, readout, prior] -> (B, 1, h, w) corrected logits."""

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 16, 3, padding=2, dilation=2), nn.ReLU(),
                                      nn.Conv2d(16, 1, 1))
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

        def forward(self, logits, readout, prior):
            x = torch.cat([(logits / LOGIT_SCALE).clamp(-3, 3), readout, prior], dim=1)
            return logits + self.body(x)

    return Fusion()


def inputs(rec: dict[str, np.ndarray]):
    import torch

    return tuple(torch.from_numpy(rec[k].astype(np.float32))[:, None] for k in ("logits", "readout", "prior", "target"))


def iou_per_sequence(pred, target) -> float:
    p, t = pred > 0, target > 0.5
    inter = (p & t).flatten(1).sum(1).float()
    union = (p | t).flatten(1).sum(1).clamp(min=1).float()
    return float((inter / union).mean())


def main(argv: list[str] | None = None) -> None:
    import torch
    import torch.nn.functional as F

    from .data import default_data_root

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heads", default="lp")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "video_cv")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    names = all_sequences(default_data_root() / "DAVIS2016")
    folder = args.out / f"fusion-{args.heads}"
    recs = {n: inputs(dict(np.load(folder / f"{n}.npz"))) for n in names}
    report = {"folds": [], "sequences": {}}
    gen = np.random.default_rng(args.seed)
    for k, held in enumerate(folds_of(names, args.folds, args.seed)):
        train = [n for n in names if n not in held]
        net = build_decoder()
        opt = torch.optim.Adam(net.parameters(), lr=args.lr)
        for step in range(1, args.steps + 1):
            n = train[gen.integers(len(train))]
            lo, ro, pr, tg = recs[n]
            idx = torch.from_numpy(gen.integers(0, len(lo), 4))
            loss = F.binary_cross_entropy_with_logits(net(lo[idx], ro[idx], pr[idx]), (tg[idx] > 0.5).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 200 == 0:
                log.info("fold %d step %d loss %.4f", k, step, loss.item())
        with torch.no_grad():
            for n in held:
                lo, ro, pr, tg = recs[n]
                fused, alone = iou_per_sequence(net(lo, ro, pr), tg), iou_per_sequence(lo, tg)
                report["sequences"][n] = {"fold": k, "fused": fused, "head": alone}
        torch.save(net.state_dict(), folder / f"fusion_fold{k}.pt")
        f = [report["sequences"][n]["fused"] for n in held]
        h = [report["sequences"][n]["head"] for n in held]
        report["folds"].append({"fold": k, "fused": float(np.mean(f)), "head": float(np.mean(h))})
        log.warning("fold %d: offline IoU fused %.3f vs head %.3f (%d/%d sequences better)", k, np.mean(f), np.mean(h),
                    sum(a > b for a, b in zip(f, h)), len(held))
    s = report["sequences"]
    log.warning("all: fused %.3f vs head %.3f, better on %d/%d", np.mean([v["fused"] for v in s.values()]),
                np.mean([v["head"] for v in s.values()]), sum(v["fused"] > v["head"] for v in s.values()), len(s))
    (folder / "fusion_cv.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
