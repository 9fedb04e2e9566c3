"""A learned key projection for the memory read, scored by cross-validation against the
training-free one (per-video principal axes, ``ivos.video.memory_read.Projection.fit``).

The projection (472 -> 64, plus a centring vector) is trained so that the readout of frame t
from frame 0 (softmax over cosine similarities of the projected, 2x2-pooled, normalised keys;
values = frame 0's mask) predicts frame t's mask: binary cross-entropy on the key cells, over
the cached parent-training features of the fold's training sequences
(``runs/video_cv/features``). Scored by the readout's IoU on the held-out fold's sequences
(the same measure as for the training-free projection).

    python -m training.memory_projection --folds 3 --steps 600
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from .video_cv import ROOT, TRAIN_SIZE, all_sequences, folds_of

log = logging.getLogger("ivos.training")


def load_features(out: Path, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per sequence: frame 0's example and the MaskTrack examples (high, target), float32."""
    data = {}
    for n in names:
        with np.load(out / "features" / f"{n}.npz") as z:
            data[n] = {"high": z["high"].astype(np.float32), "target": z["target"][:, 0].astype(np.float32)}
    return data


def readout_iou(data: dict, project) -> float:
    """Mean over sequences of the mean IoU of readout(frame t | frame 0) > 0.5 vs the target,
    over the MaskTrack examples; ``project(high (C, h8, w8)) -> Projection``."""
    from ivos.postprocess import gate_box
    from ivos.settings import MemorySettings
    from ivos.video.memory_read import FrameKeys, ObjectMemory

    per_seq = []
    for d in data.values():
        proj = project(d["high"][0])
        fk0 = FrameKeys.of(d["high"][0], (0, 0), TRAIN_SIZE, proj)
        t0 = np.kron(d["target"][0], np.ones((4, 4), np.float32))
        if t0.max() < 0.5:
            continue
        near = fk0.inside(gate_box(t0 > 0.5, 0.5))
        mem = ObjectMemory()
        mem.add(0, fk0.keys[near], fk0.values(t0)[near], annotated=True, capacity=0)
        ious = []
        for e in range(1, len(d["high"]), 2):
            fk = FrameKeys.of(d["high"][e], (0, 0), TRAIN_SIZE, proj)
            r = fk.to_working(mem.read(fk.keys, MemorySettings()), TRAIN_SIZE) > 0.5
            tg = d["target"][e] > 0.5
            ious.append((r & tg).sum() / max((r | tg).sum(), 1))
        per_seq.append(float(np.mean(ious)))
    return float(np.mean(per_seq))


def train_projection(data: dict, steps: int, seed: int, dims: int = 64):
    """(mean (C,), axes (dims, C)) float32 learned on ``data``'s sequences."""
    import torch
    import torch.nn.functional as F

    from ivos.video.memory_read import Projection

    gen = np.random.default_rng(seed)
    names = list(data)
    pooled = np.concatenate([d["high"][::4].reshape(len(d["high"][::4]), d["high"].shape[1], -1)
                             .transpose(0, 2, 1).reshape(-1, d["high"].shape[1]) for d in data.values()])
    init = Projection.fit(pooled.T.reshape(pooled.shape[1], -1, 1), dims)
    mean = torch.tensor(init.mean, requires_grad=True)
    axes = torch.tensor(init.axes, requires_grad=True)
    log_t = torch.tensor(float(np.log(0.05)), requires_grad=True)
    opt = torch.optim.Adam([mean, axes, log_t], lr=1e-3)

    def keys(high):  # (C, h8, w8) -> (n, d) unit, stride 16
        z = torch.einsum("dc,chw->dhw", axes, high - mean[:, None, None])
        z = F.avg_pool2d(z[None], 2)[0]
        return F.normalize(z.reshape(z.shape[0], -1).T, dim=1)

    losses = []
    t0 = time.time()
    for step in range(1, steps + 1):
        d = data[names[gen.integers(len(names))]]
        e = int(gen.integers(1, len(d["high"])))
        high0, high_e = torch.from_numpy(d["high"][0]), torch.from_numpy(d["high"][e])
        v0 = F.avg_pool2d(torch.from_numpy(d["target"][0])[None, None], 4)[0, 0].reshape(-1)
        te = F.avg_pool2d(torch.from_numpy(d["target"][e])[None, None], 4)[0, 0].reshape(-1)
        w = torch.softmax(keys(high_e) @ keys(high0).T / log_t.exp(), dim=1)
        readout = (w @ v0).clamp(1e-4, 1 - 1e-4)
        loss = F.binary_cross_entropy(readout, te)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0:
            log.info("projection step %d/%d loss %.4f T %.3f (%.0f s)", step, steps, np.mean(losses[-100:]),
                     float(log_t.detach().exp()), time.time() - t0)
    return (mean.detach().numpy().astype(np.float32), axes.detach().numpy().astype(np.float32),
            float(log_t.detach().exp()))


def main(argv: list[str] | None = None) -> None:
    import torch

    from ivos.video.memory_read import Projection

    from .data import default_data_root

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "video_cv")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    names = all_sequences(default_data_root() / "DAVIS2016")
    folds = folds_of(names, args.folds, args.seed)
    data = load_features(args.out, names)
    report = {"folds": []}
    for k, held in enumerate(folds):
        train = {n: data[n] for n in names if n not in held}
        test = {n: data[n] for n in held}
        mean, axes, temperature = train_projection(train, args.steps, args.seed)
        learned = readout_iou(test, lambda high: Projection(mean, axes))
        pca = readout_iou(test, Projection.fit)
        report["folds"].append({"fold": k, "learned": learned, "pca_per_video": pca, "temperature": temperature})
        np.savez(args.out / f"projection_fold{k}.npz", mean=mean, axes=axes)
        log.warning("fold %d: readout IoU learned %.3f vs per-video PCA %.3f", k, learned, pca)
    (args.out / "projection_cv.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
