"""K-fold cross-validation of video propagation over all 30 DAVIS-2016 train sequences.

Why: five held-aside sequences chose settings that did not carry over to unseen videos
(DAVIS dev J 0.846, unseen footage 0.737). Every video choice is made here instead: the
OSVOS parent head is trained on the other folds (the shipped recipe: 1500 steps, batch 8,
whole 288x512 feature maps, the frozen ImageNet EfficientNet-Lite0 trunk) and each method is
scored on the held-out fold's sequences, from their ground-truth first mask. The 30
sequences are ``ImageSets/train.txt`` (25, every 3rd frame) and ``ImageSets/dev.txt`` (5, every
frame; their training examples use every 3rd frame too, like the others). The dev split stays
the reported figure; it is one sixth of the folds' data here, never chosen on by itself.

Two steps, each resumable (outputs under ``--out``, default ``runs/video_cv``)::

    python -m training.video_cv train --folds 3            # features once, then one parent head per fold
    python -m training.video_cv eval --folds 3 --method osvos-ft --method memory --threads 1

``train`` caches each sequence's backbone features (``features/<seq>.npz``) and writes
``fold<k>/osvos-lite0/``: the shipped bundle's graphs and card with that fold's parent head.
Head variants go to ``heads-<variant>/fold<k>/``: ``--learned-projection`` (variant "lp") also
learns the memory keys' projection on the fold (``training.memory_projection``) and ships it
in the fold's bundle; ``--prior-readout A`` ("prA") trains heads for the memory mode's
readout-mixed priors, ``--prior-from-target`` ("t") with priors from each example's own
deformed target, ``--synthetic N`` ("synN") adds synthetic clips (``training.synthetic_clips``).
Results: ``benchmarks/results/video_cv.md``.
``eval`` writes ``cv_<method>.json`` per method (per-sequence J, fine-tune seconds, per-frame
ms, wall seconds) and ``cv.md``, the side-by-side table (``--markdown``).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("ivos.training")
ROOT = Path(__file__).resolve().parents[1]
SHIPPED_OSVOS = ROOT / "engine" / "models" / "osvos-lite0"
TRAIN_SIZE = (288, 512)
"""Resolution of the parent head's training features: the shipped osvos-lite0 recipe."""


def all_sequences(davis: Path) -> list[str]:
    """The 30 DAVIS-2016 train sequences here (train.txt + dev.txt), sorted by name."""
    names = []
    for split in ("train", "dev"):
        names += (davis / "ImageSets" / f"{split}.txt").read_text().split()
    return sorted(names)


def folds_of(names: list[str], k: int, seed: int = 0) -> list[list[str]]:
    """``k`` disjoint folds covering ``names``: a seeded shuffle dealt round-robin (sizes differ
    by at most one). The same (names, k, seed) always gives the same folds."""
    order = list(names)
    np.random.default_rng(seed).shuffle(order)
    return [sorted(order[i::k]) for i in range(k)]


def fold_bundle(out: Path, fold: int, heads: str = "") -> Path:
    """The bundle of fold ``fold``'s parent head; ``heads``: a head variant's name ("" = the
    shipped recipe; "pr50": trained with priors half readout, ``--prior-readout 0.5``)."""
    return out / (f"heads-{heads}" if heads else "") / f"fold{fold}" / "osvos-lite0"


def readout_priors(data: dict[str, np.ndarray], share: float, *, from_target: bool = False,
                   seed: int = 0, projection=None) -> dict[str, np.ndarray]:
    """The sequence's examples with priors ``(1 - share) * prior + share * readout``: each
    example's memory readout (``ivos.video.memory_read``, default settings) from the sequence's first
    example (frame 0, its target as the memory mask), as the memory mode feeds its heads.
    The first example keeps its prior (reading itself back would be a perfect readout).
    ``from_target``: the mask part of every prior is the example's own target, deformed
    (``ivos.video.osvos.finetune.deform_mask``: shifted, dilated or eroded), as the memory mode's
    flow-warped previous mask is a near miss of the current mask; never a zero prior.
    ``projection``: the keys' (a learned one); None: the first example's principal axes."""
    from ivos.postprocess import gate_box
    from ivos.settings import MemorySettings
    from ivos.video.memory_read import FrameKeys, ObjectMemory, Projection

    valid = TRAIN_SIZE
    high0 = data["high"][0].astype(np.float32)
    projection = projection or Projection.fit(high0)
    first = FrameKeys.of(high0, (0, 0), valid, projection)
    target0 = np.kron(data["target"][0, 0].astype(np.float32), np.ones((4, 4), np.float32))  # stride 4 -> pixels
    memory = ObjectMemory()
    if target0.max() > 0.5:
        x0, y0, x1, y1 = gate_box(target0 > 0.5, 0.5)
        near = first.inside((x0, y0, x1, y1))
        memory.add(0, first.keys[near], first.values(target0)[near], annotated=True, capacity=0)
    out = dict(data)
    out["prior"] = data["prior"].copy()
    if not len(memory):
        return out
    settings = MemorySettings()
    rng = np.random.default_rng(seed)
    for e in range(1, len(data["high"])):
        keys = FrameKeys.of(data["high"][e].astype(np.float32), (0, 0), valid, projection)
        readout = keys.to_working(memory.read(keys.keys, settings), valid)
        prior = data["prior"][e, 0].astype(np.float32)
        if from_target:
            from ivos.video.osvos.finetune import deform_mask, pool4

            full = np.kron(data["target"][e, 0].astype(np.float32), np.ones((4, 4), np.float32))
            prior = pool4(deform_mask(full, rng))
        out["prior"][e, 0] = ((1.0 - share) * prior + share * readout).astype(np.float16)
    return out


def sequence_features(out: Path, davis: Path, name: str, net, seed: int) -> dict[str, np.ndarray]:
    """Cached backbone features of one sequence's parent-training examples (see
    ``training.osvos_parent.build_features``), every 3rd frame (train.txt keeps every 3rd)."""
    from ivos.settings import FinetuneConfig

    from .osvos_parent import build_features

    path = out / "features" / f"{name}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    frames = sorted((davis / "JPEGImages" / "480p" / name).glob("*.jpg"))
    dense = len(frames) > 1 and int(frames[1].stem) - int(frames[0].stem) == 1
    frames = frames[::3] if dense else frames
    masks = [davis / "Annotations" / "480p" / name / (f.stem + ".png") for f in frames]
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    data = build_features(net, [(name, frames, masks)], TRAIN_SIZE, rng, FinetuneConfig())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)
    return data


RECIPE_FIELDS = ("propagation", "finetune", "postprocess")
"""The shipped card's propagation recipe, which a fold bundle follows: a method with
``propagation=bundle`` is the shipped recipe on the fold's parent head (fold bundles written
before the card named v2 kept the older recipe, and such methods ran that one)."""

GRAPH_ARTIFACTS = ("onnx", "trunk_onnx", "head_onnx", "trunk_onnx_int8")
"""The shipped bundle's graph artifacts a fold bundle copies (those the shipped card names)."""


def write_fold_bundle(dest: Path, head: dict[str, np.ndarray], meta: dict, projection=None) -> None:
    """The shipped osvos-lite0 bundle with ``head`` as its parent head, ``meta`` in its card
    and (when given) ``projection`` as its learned key projection."""
    dest.mkdir(parents=True, exist_ok=True)
    np.savez(dest / "head_parent.npz", **head)
    card = json.loads((SHIPPED_OSVOS / "model.json").read_text())
    card["model_card"] = {**card.get("model_card", {}), "training": meta,
                          "intended_use": "cross-validation only (training.video_cv)"}
    (dest / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    sync_graphs(dest)
    if projection is not None:
        np.savez(dest / "memory_projection.npz", mean=projection.mean, axes=projection.axes)
        card = json.loads((dest / "model.json").read_text())
        card["artifacts"]["memory_projection"] = "memory_projection.npz"
        (dest / "model.json").write_text(json.dumps(card, indent=2) + "\n")


def sync_graphs(dest: Path) -> None:
    """Gives a fold bundle the shipped bundle's graphs, the graph fields of its card and its
    propagation recipe (``RECIPE_FIELDS``): a fold differs in its parent head and training
    record only. Bundles written before the shipped one changed catch up."""
    shipped = json.loads((SHIPPED_OSVOS / "model.json").read_text())
    card = json.loads((dest / "model.json").read_text())
    for key in GRAPH_ARTIFACTS:
        graph = shipped["artifacts"].get(key)
        if graph is None:
            continue
        if not (dest / graph).exists() or (dest / graph).stat().st_size != (SHIPPED_OSVOS / graph).stat().st_size:
            shutil.copyfile(SHIPPED_OSVOS / graph, dest / graph)
    artifacts = {**shipped["artifacts"], **{k: v for k, v in card.get("artifacts", {}).items()
                                            if k == "memory_projection"}}
    synced = ("osvos", "trunk_quantization", *RECIPE_FIELDS)
    if any(card.get(f) != shipped.get(f) for f in synced) or card.get("artifacts") != artifacts:
        for f in synced:
            if f in shipped:
                card[f] = shipped[f]
            else:
                card.pop(f, None)
        card["artifacts"] = artifacts
        (dest / "model.json").write_text(json.dumps(card, indent=2) + "\n")


def train(args) -> None:
    import torch

    from ivos.export.osvos import build_osvos
    from ivos.video.osvos.head import init_head_params

    from .osvos_parent import train_head

    torch.set_num_threads(args.threads)
    davis = args.data_root / "DAVIS2016"
    names = all_sequences(davis)
    folds = folds_of(names, args.folds, args.seed)
    net = build_osvos("osvos-lite0")
    net.backbone.load_pretrained_trunk()
    net.eval()
    t0 = time.time()
    feats = {}
    for i, name in enumerate(names):
        feats[name] = sequence_features(args.out, davis, name, net, args.seed)
        log.info("features %d/%d %s (%.0f s)", i + 1, len(names), name, time.time() - t0)
    # the heads' variant name (their folder under --out): what they were trained with
    parts = [f"pr{round(args.prior_readout * 100)}"] if args.prior_readout > 0 or args.prior_from_target else []
    parts += ["t"] if args.prior_from_target else []
    parts += ["lp"] if args.learned_projection else []
    extra = None
    if args.synthetic > 0:
        extra = synthetic_features(args, net)
        parts.append(f"syn{args.synthetic}")
    variant = "-".join(parts)
    log.info("features of %d sequences: %.0f s", len(names), time.time() - t0)
    for k, held in enumerate(folds):
        if args.only_fold is not None and k != args.only_fold:
            continue
        dest = fold_bundle(args.out, k, variant)
        if (dest / "head_parent.npz").exists():
            log.info("fold %d: %s exists, skipped", k, dest)
            continue
        trained_on = [n for n in names if n not in held]
        projection = None
        if args.learned_projection:
            from ivos.video.memory_read import Projection

            from .memory_projection import load_features, train_projection

            mean, axes, _ = train_projection(load_features(args.out, trained_on), args.projection_steps, args.seed)
            projection = Projection(mean, axes)
        fold_feats = feats
        if args.prior_readout > 0 or args.prior_from_target:
            fold_feats = {n: readout_priors(feats[n], args.prior_readout, from_target=args.prior_from_target,
                                            seed=args.seed, projection=projection) for n in trained_on}
        data = {key: np.concatenate([fold_feats[n][key] for n in trained_on] + ([extra[key]] if extra else []))
                for key in feats[names[0]]}
        with torch.no_grad():  # a fresh seeded head on the same frozen trunk
            for name, value in init_head_params(net.backbone.low_channels, net.backbone.high_channels,
                                                seed=args.seed).items():
                net.head_params()[name].copy_(torch.from_numpy(value))
        t1 = time.time()
        losses = train_head(net, data, args.steps, args.batch, args.lr, args.seed, 0)
        meta = {"fold": k, "folds": args.folds, "prior_readout": args.prior_readout,
                "prior_from_target": args.prior_from_target,
                "synthetic_clips": args.synthetic, "held_out": held, "davis2016_sequences": trained_on,
                "examples": int(len(data["low"])), "steps": args.steps, "batch": args.batch, "lr": args.lr,
                "train_size": list(TRAIN_SIZE), "seed": args.seed, "train_seconds": round(time.time() - t1, 1),
                "final_loss": round(float(np.mean(losses[-100:])), 4)}
        write_fold_bundle(dest, net.head_numpy(), meta, projection)
        log.info("fold %d written: %s", k, json.dumps(meta)[:400])


def synthetic_features(args, net) -> dict[str, np.ndarray]:
    """``args.synthetic`` cached examples of ``training.synthetic_clips`` (coco128-seg photos;
    not DAVIS, so every fold may train on them), priors mixed with ``args.prior_readout``."""
    from .data import _coco
    from .synthetic_clips import synthetic_examples

    path = args.out / "features" / f"synthetic-{args.synthetic}-pr{round(args.prior_readout * 100)}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    data = synthetic_examples(net, _coco(args.data_root), args.synthetic, args.prior_readout, TRAIN_SIZE, args.seed)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)
    return data


def main(argv: list[str] | None = None) -> None:
    from .data import default_data_root

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("train", "eval"):
        s = sub.add_parser(name)
        s.add_argument("--folds", type=int, default=3)
        s.add_argument("--seed", type=int, default=0, help="fold assignment and training seed")
        s.add_argument("--out", type=Path, default=ROOT / "runs" / "video_cv")
        s.add_argument("--data-root", type=Path, default=None, help="default: $IVOS_DATA_ROOT or ../shared/datasets")
        s.add_argument("--threads", type=int, default=1)
    t = sub.choices["train"]
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--prior-from-target", action="store_true",
                   help="priors from each example's own deformed target (never zero) instead of the t-3 mask")
    t.add_argument("--only-fold", type=int, default=None, help="train this fold only (quick checks)")
    t.add_argument("--learned-projection", action="store_true",
                   help="per fold, learn the memory keys' projection (training.memory_projection) and read with it")
    t.add_argument("--projection-steps", type=int, default=1500)
    t.add_argument("--synthetic", type=int, default=0,
                   help="also train on this many synthetic two-frame clips from coco128-seg (training.synthetic_clips)")
    t.add_argument("--prior-readout", type=float, default=0.0,
                   help="train the heads for the memory mode's prior_readout: priors (1-a) prior + a readout")
    e = sub.choices["eval"]
    e.add_argument("--method", action="append", required=True, help="a method of training.video_cv_methods")
    e.add_argument("--sequences", nargs="+", help="only these sequences (smoke runs)")
    e.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    args.data_root = args.data_root or default_data_root()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "train":
        train(args)
    else:
        from .video_cv_eval import evaluate

        evaluate(args)


if __name__ == "__main__":
    main()
