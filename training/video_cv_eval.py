"""The ``eval`` step of ``training.video_cv``: each method on every held-out sequence.

A method is ``NAME[:key=value,...]``; NAME is a label, the keys set the propagation:

    propagation the named recipe the other keys change (``ivos.settings.PROPAGATIONS``):
               "classic" (default: the methods below were written against it) or "bundle"
               (the shipped card's, whatever it is when the evaluation runs)
    precision  "auto" (an int8 trunk where the bundle ships one) or "fp32"  default "auto"
    mode       "osvos+mask" or "memory"                          default: the recipe's
    steps      fine-tuning steps (0: the fold's parent head)    default: the recipe's
    crf        1 / 0: the frame CRF                              default: the bundle's
    crop       1 / 0: the network on the motion gate's crop     default 1
    working    HxW: the memory mode's working size                 default: the recipe's
    adapt_every, adapt_steps: online adaptation (``ivos.video.propagation.OnlineAdaptation``)
    heads      the fold heads' variant (``training.video_cv.fold_bundle``)  default "" (shipped recipe)
    crf_pixels the frame CRF's pixel budget (``VideoPredictor(crf_max_pixels=)``)
    roi_margin the motion gate's margin (``VideoPredictor(roi_margin=)``)
    crf_reach  how far around the object the frame CRF looks (``VideoPredictor(crf_reach=)``)
    ft_<field> any ``ivos.settings.FinetuneConfig`` field, e.g. ft_batch=4, ft_crop=32, ft_augmentations=8
    weight, prior_weight, veto_below, prior_readout, top_k, temperature, every, capacity,
    min_confidence: ``ivos.video.memory_read.MemorySettings``

e.g. ``--method old:mode=osvos+mask --method mem:mode=memory,steps=0,weight=0.3``. Results are
kept per method in ``<out>/cv_<NAME>.json`` and a finished sequence is not run again, so an
interrupted evaluation resumes; change the NAME when you change a method's keys.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .video_cv import all_sequences, fold_bundle, folds_of, sync_graphs

log = logging.getLogger("ivos.training")

MEMORY_KEYS = {"weight": float, "prior_weight": float, "veto_below": float, "prior_readout": float, "top_k": int,
               "temperature": float, "every": int, "capacity": int, "min_confidence": float,
               "warp": lambda v: v == "1"}


def parse_method(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(":")
    keys = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    known = {"propagation", "precision", "mode", "steps", "crf", "crf_pixels", "crf_reach", "roi_margin", "crop", "heads", "working", "adapt_every", "adapt_steps",
             *MEMORY_KEYS, *(f"ft_{f}" for f in finetune_fields())}
    unknown = set(keys) - known
    if unknown:
        raise SystemExit(f"method {name}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    return name, keys


def finetune_fields() -> dict[str, type]:
    """``FinetuneConfig`` field name -> its type (int, float, bool or str)."""
    from dataclasses import fields

    from ivos.settings import FinetuneConfig

    kinds = {"int": int, "float": float, "bool": bool, "str": str}
    return {f.name: kinds[f.type if isinstance(f.type, str) else f.type.__name__] for f in fields(FinetuneConfig)}


def predictor_for(bundle: Path, keys: dict[str, str], threads: int):
    """(VideoPredictor, its model) of one method on one fold's bundle: the named propagation
    (``propagation``, default "classic", so that a method means the same whatever the shipped
    card says) changed by the method's keys."""
    import ivos
    from ivos.settings import PropagationSettings

    osvos = ivos.load(bundle, backend="ort", threads=threads, precision=keys.get("precision", "auto"))
    propagation = keys.get("propagation", "classic")
    base = PropagationSettings.resolve(osvos.bundle, propagation=propagation, mode=keys.get("mode"), threads=threads)
    cfg = replace(base.finetune, use_prior=base.mode != "osvos", threads=threads)
    if "steps" in keys:
        cfg = replace(cfg, steps=int(keys["steps"]))
    kinds = finetune_fields()
    tuned = {k[3:]: v for k, v in keys.items() if k.startswith("ft_")}
    cfg = replace(cfg, **{k: (v == "1") if kinds[k] is bool else kinds[k](v) for k, v in tuned.items()})
    memory = replace(base.memory, **{k: MEMORY_KEYS[k](v) for k, v in keys.items() if k in MEMORY_KEYS})
    crop = keys.get("crop", "1") == "1"
    kwargs = {} if crop else {"crop_context": None}
    if "crf_pixels" in keys:
        kwargs["crf_max_pixels"] = int(keys["crf_pixels"])
    if "roi_margin" in keys:
        kwargs["roi_margin"] = float(keys["roi_margin"])
    if "crf_reach" in keys:
        kwargs["crf_reach"] = float(keys["crf_reach"])
    working = tuple(int(v) for v in keys["working"].split("x")) if "working" in keys else None
    adapt = {k: int(v) for k, v in keys.items() if k in ("adapt_every", "adapt_steps")}
    vp = ivos.VideoPredictor(osvos, propagation=propagation, mode=base.mode, finetune_config=cfg, memory=memory,
                             working_size=working, crf=None if "crf" not in keys else keys["crf"] == "1",
                             **adapt, **kwargs)
    return vp, osvos


def evaluate(args) -> None:
    from ivos.bench.video import read_sequence, run_propagation

    davis = args.data_root / "DAVIS2016"
    names = all_sequences(davis)
    folds = folds_of(names, args.folds, args.seed)
    fold_of = {n: k for k, fold in enumerate(folds) for n in fold}
    wanted = args.sequences or names
    for text in args.method:
        name, keys = parse_method(text)
        path = args.out / f"cv_{name}.json"
        report = json.loads(path.read_text()) if path.exists() else {"method": text, "folds": folds, "sequences": {}}
        for k in range(args.folds):
            todo = [n for n in wanted if fold_of[n] == k and n not in report["sequences"]]
            if not todo:
                continue
            bundle = fold_bundle(args.out, k, keys.get("heads", ""))
            while not (bundle / "head_parent.npz").exists():  # its training may still be running
                log.info("waiting for %s", bundle)
                time.sleep(30)
            sync_graphs(bundle)
            vp, model = predictor_for(bundle, keys, args.threads)
            for seq in todo:
                t0 = time.perf_counter()
                video, gt = read_sequence(davis, seq, None)
                state = vp.init_state(video)
                vp.add_new_mask(state, 0, 1, gt[0])
                r = run_propagation(vp, state, gt)
                wall = time.perf_counter() - t0
                report["sequences"][seq] = {"fold": k, "j": r["j"], "frames": len(gt),
                                            "finetune_s": r["finetune_s"], "frame_ms_p50": float(np.median(r["frame_ms"])),
                                            "wall_s": wall, "ious": r["ious"]}
                log.warning("%s fold %d %s: J %.3f, fine-tune %.1f s, %.0f ms/frame, %.1f s", name, k, seq, r["j"],
                            r["finetune_s"] or 0.0, np.median(r["frame_ms"]), wall)
                path.write_text(json.dumps(report, indent=1) + "\n")
            vp.close()
            model.close()
    if args.markdown:
        args.markdown.write_text(markdown(args, [parse_method(m)[0] for m in args.method]))


def summary(seqs: dict) -> dict:
    js = [v["j"] for v in seqs.values()]
    by_fold: dict[int, list[float]] = {}
    for v in seqs.values():
        by_fold.setdefault(v["fold"], []).append(v["j"])
    fold_means = [float(np.mean(by_fold[k])) for k in sorted(by_fold)]
    return {"j": float(np.mean(js)), "n": len(js), "fold_j": fold_means,
            "fold_spread": float(max(fold_means) - min(fold_means)) if fold_means else 0.0,
            "finetune_s_p50": float(np.median([v["finetune_s"] or 0.0 for v in seqs.values()])),
            "frame_ms_p50": float(np.median([v["frame_ms_p50"] for v in seqs.values()])),
            "wall_s": float(sum(v["wall_s"] for v in seqs.values()))}


def markdown(args, names: list[str]) -> str:
    reports = {n: json.loads((args.out / f"cv_{n}.json").read_text()) for n in names}
    seqs = sorted(set().union(*(r["sequences"] for r in reports.values())))
    lines = ["| sequence | fold | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for s in seqs:
        fold = next(r["sequences"][s]["fold"] for r in reports.values() if s in r["sequences"])
        cells = [f"{reports[n]['sequences'][s]['j']:.3f}" if s in reports[n]["sequences"] else "" for n in names]
        lines.append(f"| {s} | {fold} | " + " | ".join(cells) + " |")
    sums = {n: summary(reports[n]["sequences"]) for n in names}
    lines.append("| **mean J** | | " + " | ".join(f"**{sums[n]['j']:.3f}** ({sums[n]['n']})" for n in names) + " |")
    lines.append("| fold means | | " + " | ".join(" / ".join(f"{j:.3f}" for j in sums[n]["fold_j"]) for n in names) + " |")
    lines.append("| fine-tune s p50 | | " + " | ".join(f"{sums[n]['finetune_s_p50']:.1f}" for n in names) + " |")
    lines.append("| ms per frame p50 | | " + " | ".join(f"{sums[n]['frame_ms_p50']:.0f}" for n in names) + " |")
    lines.append("| wall s (all sequences) | | " + " | ".join(f"{sums[n]['wall_s']:.0f}" for n in names) + " |")
    methods = "\n".join(f"- `{n}`: `{reports[n]['method']}`" for n in names)
    return "\n".join(lines) + "\n\nMethods:\n" + methods + "\n"
