"""Two-stage training of a click network (paper 2.1.1-2.1.2).

Stage 1 trains the config with ``use_mask=False`` (the mask input is replaced by zeros): this
is the "w/o init. mask" ablation model (``<config>-nomask``), saved as ``stage1.pt``.
Stage 2 starts from the stage-1 weights with the mask channel's first-conv weights zeroed
(``zero_mask_weights``: the same function at the start), ``use_mask=True``, and replaces
``--corr-fraction`` of every batch by correction examples generated online: the frozen
stage-1 model (eval, no_grad) predicts from the first interaction, N_corr in
{0,1,2,3,4,5,10,20} correction clicks are sampled in its error regions, and the network gets
all clicks plus that prediction as its mask input. ``--perturbed-fraction`` of the batch are
refinement examples: a ground-truth mask perturbed like a propagated video mask
(``training.mask_sim``) with correction clicks only, the case of ``VideoPredictor.refine``.
The rest of the batch are first interactions with zero masks (``--protocol-first-fraction`` of
all first interactions, correction examples' included, are the NoC protocol's single centre
click instead of the random mix). With ``--iterative-clicks N``
the correction examples then go through 0-N rounds (drawn per batch) of the network being
trained predicting and the NoC protocol's simulated user clicking its largest error
(``training.iterative``, RITM's iterative training), so their mask input is the network's own.

Loss: plain binary cross-entropy on logits (the paper's loss) by default; ``--loss nfl`` trains
with RITM's normalised focal loss (``training.losses``), measured from v6 in the tenth session
and not kept: no gain on small objects, and the shipped CRF setting hurts its softer maps
(benchmarks/results/click_coco.md).

Usage (from the repository root; ``training`` is not installed)::

    python -m training.train --name ivos-cpu --config ivos-cpu --stage1-steps 3000 --stage2-steps 2500
    python -m training.train --name ivos-cpu --resume          # continue from runs/ivos-cpu/last.pt, its options

Writes under ``runs/<name>/``: ``train.log``, ``metrics.jsonl`` (one JSON per log/validation
line), ``last.pt`` (resumable: model, optimiser, scheduler, RNG states, step), ``stage1.pt``
and ``final.pt`` (weights + config + metadata, see ``ivos.export.checkpoint``).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ivos.export.checkpoint import save_click_model
from ivos.export.models import MODEL_CONFIGS, ClickNet, build_model, zero_mask_weights
from ivos.network_io import CLICK_SIGMA, WORKING_SIZE

from . import click_sim
from .augment import make_view
from .composite import SHARE_RANGE, make_composite
from .data import Cache, default_data_root, load_cache
from .interactions import encode_batch, first_interactions
from .iterative import iterate_corrections
from .losses import LOSSES, click_loss
from .mask_sim import perturbed_mask
from .validate import make_val_set, validate

log = logging.getLogger("ivos.training")

SOURCE_WEIGHTS = {"davis": 0.3, "bsds": 0.4, "coco": 0.3}
"""Sampling probability per source (DAVIS frames are many but highly correlated)."""


RUN_ONLY_OPTIONS = frozenset({"name", "resume", "threads", "device", "runs_dir", "data_root",
                              "log_every", "ckpt_every", "val_every"})
"""Options that say where and how a run executes, not what it trains: ``--resume`` takes these from
the command line and every other option from the run's ``last.pt``."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True, help="run name: outputs go to runs/<name>/")
    p.add_argument("--config", default="ivos-cpu", choices=sorted(MODEL_CONFIGS), help="model config (stage 2)")
    p.add_argument("--stage1-steps", type=int, default=3000)
    p.add_argument("--stage2-steps", type=int, default=2500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256,
                   help="training crop side (px), a multiple of 32; below the 320 working size for more samples/s on CPU")
    p.add_argument("--click-sigma", default=str(CLICK_SIGMA), metavar="PX|runtime",
                   help=f"Gaussian sigma (px) of the training clicks; 'runtime' scales the runtime's {CLICK_SIGMA:g} px "
                   f"on a {WORKING_SIZE} px view to the training crop (--size * {CLICK_SIGMA:g} / {WORKING_SIZE}, 4 px "
                   "at 256), so a click covers as much of the object in training as at run time")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW LR of stage 1 (cosine decay)")
    p.add_argument("--lr2", type=float, default=1e-3, help="peak AdamW LR of stage 2 (cosine decay)")
    p.add_argument("--wd", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps at the start of each stage")
    p.add_argument("--corr-fraction", type=float, default=0.375, help="share of a stage-2 batch that are correction examples")
    p.add_argument("--perturbed-fraction", type=float, default=0.25,
                   help="share of a stage-2 batch that are refinement examples (perturbed ground-truth mask, "
                        "correction clicks only; training.mask_sim)")
    p.add_argument("--iterative-clicks", type=int, default=0, metavar="N",
                   help="stage 2: each batch's correction examples go through 0-N rounds (uniform) of the network "
                        "being trained predicting and the simulated user clicking its largest error, the last "
                        "prediction becoming their mask input (training.iterative; RITM uses 3); 0 = off")
    p.add_argument("--protocol-first-fraction", type=float, default=0.0, metavar="F",
                   help="share of the views whose first interaction is the NoC protocol's (one positive click "
                        "at the object's interior-most pixel) instead of the random mix of 1-5 positives, "
                        "negatives and strokes; it also starts correction examples; 0 = none")
    p.add_argument("--composite-fraction", type=float, default=0.0,
                   help="share of every batch's views that are copy-paste composites (training.composite: objects "
                        "pasted at many scales, small ones oversampled, with occluders and distractors); 0 = none")
    p.add_argument("--composite-max-share", type=float, default=SHARE_RANGE[1], metavar="S",
                   help="largest share of the view a composite's object covers (drawn log-uniformly from "
                        f"{SHARE_RANGE[0]} to S; default {SHARE_RANGE[1]})")
    p.add_argument("--loss", default="bce", choices=LOSSES,
                   help="bce: pixel-averaged binary cross-entropy (the paper's); nfl: RITM's normalised focal "
                        "loss (training.losses), every example's weight on its pixels still wrong, whatever "
                        "the object's size")
    p.add_argument("--trunk-lr-mult", type=float, default=0.2,
                   help="LR multiplier of a pretrained trunk's parameters (the new layers get the full LR)")
    p.add_argument("--channels-last", action="store_true",
                   help="channels_last memory format (about 1.4x faster on CPU for depthwise trunks)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--device", default="cpu",
                   help="torch device for the networks (e.g. cuda on the GPU device); batches are made on "
                        "the CPU either way, so runs on different devices see the same examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--n-val", type=int, default=40)
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--resume", action="store_true",
                   help="continue from runs/<name>/last.pt with the run's own options (only --threads, --device, "
                   "--data-root, --runs-dir and the logging/checkpoint/validation intervals may be given anew)")
    p.add_argument("--continue-from", type=Path, nargs=2, metavar=("STAGE2_WEIGHTS", "STAGE1_WEIGHTS"), default=None,
                   help="start stage 2 from published weight files (e.g. export/weights/ivos-lite0.pt and "
                   "ivos-lite0-nomask.pt, the corrector) with a fresh optimiser: a warm restart on a machine "
                   "without the run folder")
    p.add_argument("--stage1-from", type=Path, default=None, metavar="STAGE1_WEIGHTS",
                   help="skip stage 1: take its weights from a file (e.g. export/weights/ivos-lite0-nomask.pt) "
                   "and start a fresh stage 2 from them, as if stage 1 had just ended")
    p.add_argument("--stage1-init", type=Path, default=None, metavar="STAGE1_WEIGHTS",
                   help="start stage 1 from a file's weights (e.g. an earlier stage-1 model) instead of the "
                   "ImageNet trunk: a warm restart of stage 1 with a fresh optimiser and schedule")
    p.add_argument("--data-root", type=Path, default=None, help="default: $IVOS_DATA_ROOT or <repo>/../shared/datasets")
    p.add_argument("--runs-dir", type=Path, default=Path(__file__).resolve().parents[1] / "runs")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _parser()
    args = p.parse_args(argv)
    args.click_sigma = _click_sigma(p, args.click_sigma, args.size)
    if args.continue_from and args.stage1_from:
        p.error("--continue-from and --stage1-from both say where stage 2 starts: give one")
    if args.iterative_clicks < 0:
        p.error(f"--iterative-clicks must be >= 0, got {args.iterative_clicks}")
    if not 0.0 <= args.protocol_first_fraction <= 1.0:
        p.error(f"--protocol-first-fraction must be in [0, 1], got {args.protocol_first_fraction}")
    if not 0.0 <= args.composite_fraction <= 1.0:
        p.error(f"--composite-fraction must be in [0, 1], got {args.composite_fraction}")
    if not SHARE_RANGE[0] < args.composite_max_share <= 1.0:
        p.error(f"--composite-max-share must be in ({SHARE_RANGE[0]}, 1], got {args.composite_max_share}")
    if args.stage1_init and (args.continue_from or args.stage1_from):
        p.error("--stage1-init starts stage 1, which --continue-from and --stage1-from skip: give one")
    return args


def given_options(argv: list[str]) -> set[str]:
    """The destinations (e.g. ``click_sigma``) of the options written out in ``argv``."""
    written = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    return {action.dest for action in _parser()._actions if written & set(action.option_strings)}


def resumed_args(args: argparse.Namespace, given: set[str], saved: dict) -> argparse.Namespace:
    """The options a resumed run goes on with: ``saved`` (``vars`` of the run's parsed options, from
    its ``last.pt``) for everything it trains, ``args`` for ``RUN_ONLY_OPTIONS``.

    Raises:
        ValueError: naming each option in ``given`` (written on the command line) whose value
            differs from the run's: a resumed run cannot change what it trains.
    """
    changed = sorted(k for k in given - RUN_ONLY_OPTIONS if k in saved and str(vars(args)[k]) != str(saved[k]))
    if changed:
        raise ValueError("--resume goes on with the run's own options; these differ from it: " + ", ".join(
            f"--{k.replace('_', '-')} {vars(args)[k]} (the run has {saved[k]})" for k in changed))
    merged = {**vars(args), **{k: v for k, v in saved.items() if k not in RUN_ONLY_OPTIONS}}
    return argparse.Namespace(**merged)


def _click_sigma(parser: argparse.ArgumentParser, value: str, size: int) -> float:
    """``--click-sigma`` as pixels at the training size ``size``."""
    if value == "runtime":
        return CLICK_SIGMA * size / WORKING_SIZE
    try:
        sigma = float(value)
    except ValueError:
        sigma = float("nan")
    if not sigma > 0:
        parser.error(f"--click-sigma must be a positive number of pixels or 'runtime', got {value!r}")
    return sigma


def stage1_config(config_name: str):
    """The stage-1 (no initial mask) config of a stage-2 config: its ``-nomask`` twin."""
    config = MODEL_CONFIGS[config_name]
    return MODEL_CONFIGS.get(f"{config.name}-nomask", dataclasses.replace(config, name=f"{config.name}-nomask", use_mask=False))


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 1% of ``peak``; ``step`` counts from 0 in the stage."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def sample_views(cache: Cache, n: int, size: int, rng: np.random.Generator, composite: float = 0.0,
                 composite_max_share: float = SHARE_RANGE[1]):
    """n augmented views, sources drawn by SOURCE_WEIGHTS, then an image, then an object;
    each view is a copy-paste composite (``training.composite``: small objects, occluders)
    with probability ``composite``, its object covering up to ``composite_max_share`` of it."""
    sources = list(SOURCE_WEIGHTS)
    probs = np.array([SOURCE_WEIGHTS[s] for s in sources])
    views = []
    while len(views) < n:
        if composite > 0 and rng.random() < composite:
            view = make_composite(cache, size, rng, max_share=composite_max_share)
            if view is not None:
                views.append(view)
            continue
        entries = cache.train[sources[rng.choice(len(sources), p=probs)]]
        entry = entries[rng.integers(len(entries))]
        view = make_view(entry, int(rng.integers(len(entry.objects))), size, rng)
        if view is not None:
            views.append(view)
    return views


def make_batch(cache: Cache, args, rng: np.random.Generator, encoding: str, corrector: ClickNet | None,
               model: ClickNet | None = None):
    """One training batch (image, mask, clicks, gt tensors). With a ``corrector`` (stage 2)
    the batch holds, in order: round(corr_fraction * batch) correction examples (the
    corrector's prediction from the first interaction as the mask, the first interaction plus
    correction clicks; then, with ``args.iterative_clicks`` and the ``model`` being trained,
    0 to that many rounds of ``iterative.iterate_corrections``), round(perturbed_fraction * batch)
    refinement examples (a ``mask_sim.perturbed_mask`` as the mask, correction clicks only: the
    video ``refine`` case), then first-interaction examples without a mask."""
    views = sample_views(cache, args.batch, args.size, rng, getattr(args, "composite_fraction", 0.0),
                         getattr(args, "composite_max_share", SHARE_RANGE[1]))
    inters = first_interactions(views, rng, getattr(args, "protocol_first_fraction", 0.0))
    if corrector is None:
        return encode_batch(views, inters, None, encoding, args.click_sigma)
    n_corr = round(args.corr_fraction * args.batch)
    n_pert = min(round(args.perturbed_fraction * args.batch), args.batch - n_corr)
    masks = np.zeros((args.batch, args.size, args.size), bool)
    if n_corr:
        image, zeros, clicks, _ = encode_batch(views[:n_corr], inters[:n_corr], None, corrector.config.click_encoding,
                                               args.click_sigma)
        with torch.no_grad():
            dev = next(corrector.parameters(), torch.empty(0)).device  # a parameterless stand-in: the CPU
            masks[:n_corr] = (corrector(image.to(dev), zeros.to(dev), clicks.to(dev)) > 0).squeeze(1).cpu().numpy()
        for i in range(n_corr):
            extra = click_sim.correction_clicks(views[i].gt, masks[i], int(rng.choice(click_sim.N_CORR_CHOICES)), rng,
                                                previous=inters[i][0])
            inters[i] = (np.concatenate([inters[i][0], extra]), inters[i][1])
        max_rounds = getattr(args, "iterative_clicks", 0)
        if model is not None and max_rounds > 0:
            rounds = int(rng.integers(0, max_rounds + 1))
            gts = np.stack([v.gt for v in views[:n_corr]])
            dev = next(model.parameters()).device
            masks[:n_corr], inters[:n_corr] = iterate_corrections(model, image.to(dev), masks[:n_corr], gts, inters[:n_corr],
                                                                  rounds, encoding, args.click_sigma)
    for i in range(n_corr, n_corr + n_pert):
        masks[i] = perturbed_mask(views[i].gt, rng)
        inters[i] = (click_sim.correction_clicks(views[i].gt, masks[i], int(rng.choice(click_sim.N_CORR_CHOICES)), rng),
                     [])
    return encode_batch(views, inters, masks, encoding, args.click_sigma)


def weights_metadata(stage: int, steps: int, args, wall_s: float, data: dict, val: dict) -> dict:
    """The metadata of a stage's weight file (``stage1.pt``, ``final.pt``, a snapshot): ``args``
    gives batch, size, seed and threads (ints) and click_sigma (px); ``wall_s`` training seconds; ``data`` the cache's
    counts; ``val`` the last validation metrics."""
    return {"stage": stage, "steps": steps, "batch": args.batch, "train_size": args.size,
            "train_click_sigma": args.click_sigma, "train_iterative_clicks": getattr(args, "iterative_clicks", 0),
            "train_protocol_first_fraction": getattr(args, "protocol_first_fraction", 0.0),
            "train_loss": getattr(args, "loss", "bce"),
            "train_wall_s": round(wall_s, 1), "seed": args.seed, "threads": args.threads,
            "data": data, "val": val}


def _save_resumable(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _setup_logging(run_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    for handler in (logging.FileHandler(run_dir / "train.log"), logging.StreamHandler()):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def _stage_model(args, stage: int, stage1_weights: dict | None) -> ClickNet:
    if stage == 1:
        model = build_model(stage1_config(args.config))
        if args.stage1_init is not None:
            model.load_state_dict(_weights(args.stage1_init))
            log.info("stage 1 continues from %s", args.stage1_init)
        elif hasattr(model, "load_pretrained_trunk"):
            model.load_pretrained_trunk()
            log.info("stage 1 starts from the ImageNet weights of %s", model.config.encoder)
        return model
    model = build_model(args.config)
    model.load_state_dict(stage1_weights)
    zero_mask_weights(model)
    return model


def _weights(path: Path) -> dict:
    """The fp32 state_dict of a ``save_click_model`` file (fp16 files are cast back)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}


def _loaded(config, state_dict: dict) -> ClickNet:
    model = build_model(config)
    model.load_state_dict(state_dict)
    return model


def _param_groups(model: torch.nn.Module, trunk_lr_mult: float) -> list[dict]:
    """AdamW groups: a pretrained trunk's parameters (``model.trunk``) at ``trunk_lr_mult`` x
    the LR, everything else at the LR; each group's ``lr_mult`` scales the schedule."""
    trunk = getattr(model, "trunk", None)
    trunk_ids = {id(p) for p in trunk.parameters()} if trunk is not None else set()
    rest = [p for p in model.parameters() if id(p) not in trunk_ids]
    groups = [{"params": rest, "lr_mult": 1.0}]
    if trunk_ids:
        groups.append({"params": list(trunk.parameters()), "lr_mult": trunk_lr_mult})
    return groups


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    run_dir = args.runs_dir / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(run_dir)
    resume_state = None
    if args.resume and (run_dir / "last.pt").exists():
        resume_state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
        if "args" in resume_state:
            try:
                args = resumed_args(args, given_options(argv), resume_state["args"])
            except ValueError as err:
                raise SystemExit(f"{run_dir / 'last.pt'}: {err}") from None
        else:
            log.warning("%s predates recorded options: the run goes on with the command line's; "
                        "give the options it was started with", run_dir / "last.pt")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data_root = args.data_root or default_data_root()
    t0 = time.time()
    cache = load_cache(data_root, args.runs_dir / "cache")
    log.info("data %s from %s (%.0f s)", json.dumps(cache.counts()), data_root, time.time() - t0)
    val_set = make_val_set(cache, args.n_val, WORKING_SIZE)  # validate at the runtime's size

    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    stage, step, wall = 1, 0, 0.0
    stage1_weights = None
    metrics: dict = {}
    if resume_state is not None:
        stage, step, wall = resume_state["stage"], resume_state["step"], resume_state["wall_s"]
        metrics = resume_state["val"]
        rng.bit_generator.state = resume_state["np_rng"]
        torch.set_rng_state(resume_state["torch_rng"])
        if stage == 2:
            stage1_weights = torch.load(run_dir / "stage1.pt", weights_only=False)["state_dict"]
        log.info("resumed from %s: stage %d, step %d", run_dir / "last.pt", stage, step)
    continue_weights = None
    if args.continue_from and resume_state is None:
        continue_weights, stage1_weights = (_weights(path) for path in args.continue_from)
        stage1_meta = torch.load(args.continue_from[1], map_location="cpu", weights_only=True)["metadata"]
        save_click_model(run_dir / "stage1.pt", _loaded(stage1_config(args.config), stage1_weights),
                         {**stage1_meta, "source": str(args.continue_from[1])})
        stage = 2
        log.info("stage 2 continues from %s (corrector %s)", *args.continue_from)
    elif args.stage1_from and resume_state is None:
        stage1_weights = _weights(args.stage1_from)
        stage1_meta = torch.load(args.stage1_from, map_location="cpu", weights_only=True)["metadata"]
        save_click_model(run_dir / "stage1.pt", _loaded(stage1_config(args.config), stage1_weights),
                         {**stage1_meta, "source": str(args.stage1_from)})
        stage = 2
        log.info("stage 1 taken from %s; stage 2 starts fresh", args.stage1_from)
    log.info("args %s", json.dumps({k: str(v) for k, v in vars(args).items()}))

    metrics_file = open(run_dir / "metrics.jsonl", "a")

    def record(kind: str, **values) -> None:
        metrics_file.write(json.dumps({"kind": kind, "stage": stage, "step": step, "wall_s": round(wall, 1), **values}) + "\n")
        metrics_file.flush()

    while stage <= 2:
        steps = args.stage1_steps if stage == 1 else args.stage2_steps
        peak = args.lr if stage == 1 else args.lr2
        model = _stage_model(args, stage, stage1_weights)
        if stage == 2 and continue_weights is not None:
            model.load_state_dict(continue_weights)
            continue_weights = None
        model = model.to(device)
        corrector = None
        if stage == 2:
            corrector = build_model(stage1_config(args.config)).eval()
            corrector.load_state_dict(stage1_weights)
            corrector.requires_grad_(False)
            corrector.to(device)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(_param_groups(model, args.trunk_lr_mult), lr=peak, weight_decay=args.wd)
        if resume_state is not None:
            model.load_state_dict(resume_state["model"])
            opt.load_state_dict(resume_state["optimizer"])
            resume_state = None
        model.train()
        encoding = model.config.click_encoding
        loss_avg, t_last = 0.0, time.time()
        while step < steps:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, steps, peak, args.warmup) * group["lr_mult"]
            image, mask, clicks, gt = (t.to(device) for t in make_batch(cache, args, rng, encoding, corrector, model))
            if args.channels_last:
                image, mask, clicks = (t.contiguous(memory_format=torch.channels_last) for t in (image, mask, clicks))
            loss = click_loss(getattr(args, "loss", "bce"), model(image, mask, clicks), gt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_avg += loss.item()
            now = time.time()
            wall += now - t_last
            t_last = now
            if step % args.log_every == 0:
                log.info("stage %d step %d/%d loss %.4f lr %.2e wall %.0f s", stage, step, steps,
                         loss_avg / args.log_every, opt.param_groups[0]["lr"], wall)
                record("train", loss=loss_avg / args.log_every, lr=opt.param_groups[0]["lr"])
                loss_avg = 0.0
            if step % args.val_every == 0 or step == steps:
                t_val = time.time()
                metrics = validate(model, val_set)
                log.info("stage %d step %d VAL %s (%.0f s)", stage, step, json.dumps(metrics), time.time() - t_val)
                record("val", **metrics)
                model.train()
                t_last = time.time()  # validation time does not count as training wall time
            if step % args.ckpt_every == 0 or step == steps:
                _save_resumable(run_dir / "last.pt", {
                    "stage": stage, "step": step, "wall_s": wall, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "np_rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "val": metrics, "args": vars(args)})
        meta = weights_metadata(stage, steps, args, wall, cache.counts(), metrics)
        if stage == 1:
            save_click_model(run_dir / "stage1.pt", model, meta)
            stage1_weights = copy.deepcopy(model.state_dict())
        else:
            save_click_model(run_dir / "final.pt", model, meta)
        stage, step, wall = stage + 1, 0, 0.0
    log.info("done: %s", run_dir / "final.pt")


if __name__ == "__main__":
    main()
