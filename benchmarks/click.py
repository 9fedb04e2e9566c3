"""``ivos-bench click``: NoC@85/90 and mIoU per click with the RITM simulated user.

Methods (side by side in one run, same samples, same clicker): ``grabcut`` (OpenCV baseline)
and ``model`` (an ivos bundle via ``ivos.ImagePredictor``; with ``--both-crf`` it appears twice,
as "model" and "model+crf"). Prints a markdown table with the environment; ``--json`` and
``--plot`` write the full numbers and mIoU-vs-clicks curves.

Data root (``ivos.datasets_root``): ``--data-root``, else ``$IVOS_DATA_ROOT``, else the first
``shared/datasets`` found in the current directory or one of its parents, else
``<checkout>/../shared/datasets``.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from ._common import environment, write_report

METHODS = ("grabcut", "model")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ivos.evaluation.datasets import DATASETS  # numpy only: keeps --help light

    p.add_argument("--dataset", choices=DATASETS, default="GrabCut", help="evaluation set (default GrabCut)")
    p.add_argument("--split", default="dev", help="DAVIS2016 split: ImageSets/<split>.txt (default dev)")
    p.add_argument("--images", type=Path, help="--dataset folder: images folder")
    p.add_argument("--masks", type=Path, help="--dataset folder: masks folder (same stems, fg > 128)")
    p.add_argument("--data-root", type=Path, help="datasets root (default $IVOS_DATA_ROOT or shared/datasets)")
    p.add_argument("--max-clicks", type=int, default=20, help="clicks per sample (default 20)")
    p.add_argument("--limit", type=int, help="evaluate only the first N samples")
    p.add_argument("--method", nargs="+", choices=METHODS,
                   help="methods to compare (default: model when --model is given, else grabcut)")
    p.add_argument("--model", nargs="+", help="model bundle folder(s) for the 'model' method; several "
                   "bundles (e.g. the Table-1 ablations) are evaluated side by side, named by their bundle name")
    p.add_argument("--backend", choices=("auto", "ort", "torch"), default="auto",
                   help="backend for the 'model' method (default auto)")
    p.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                   help="network arithmetic for the 'model' method (default auto: the bundle's int8 "
                   "network on ONNX Runtime CPU when it ships one)")
    crf = p.add_mutually_exclusive_group()
    crf.add_argument("--crf", dest="crf_mode", action="store_const", const="on",
                     help="'model' with the dense CRF")
    crf.add_argument("--no-crf", dest="crf_mode", action="store_const", const="off",
                     help="'model' without the dense CRF")
    crf.add_argument("--both-crf", dest="crf_mode", action="store_const", const="both",
                     help="both, side by side (default)")
    p.set_defaults(crf_mode="both")
    p.add_argument("--threads", type=int, default=0,
                   help="the model backend's CPU threads (0 = its default, one per core); OpenCV's are left alone")
    p.add_argument("--flip", choices=("bundle", "on", "off", "both"), default="bundle",
                   help="test-time flip averaging of the model: the bundle's default (default), on, off, or both "
                        "(rows named +flip)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE...]",
                   help="'model' once more with ImagePredictor settings overridden (values as JSON), rows named "
                        "model/NAME: e.g. the settings before a change, 'before:crf_min_area=0,refocus_below=0', "
                        "side by side in one run; repeatable")
    p.add_argument("--json", type=Path, help="write all numbers (per method and per sample) here")
    p.add_argument("--plot", type=Path, help="write a PNG of mIoU vs number of clicks here")


def _environment(backend: str | None, methods: list[str], threads: int) -> dict:
    env = environment(omp_num_threads=os.environ.get("OMP_NUM_THREADS"), model_threads=threads)
    if "grabcut" in methods:
        import cv2

        env["opencv"] = cv2.__version__
        env["opencv_threads"] = cv2.getNumThreads()
    if backend is not None:
        env["model_backend"] = backend
    return env


def _segmenters(args) -> tuple[list, str | None]:
    """The segmenters named by --method, and the model's backend (None without a model)."""
    from ivos.errors import InvalidInput

    methods = args.method or (["model"] if args.model else ["grabcut"])
    segs, backend = [], None
    for m in dict.fromkeys(methods):  # keep order, drop repeats
        if m == "grabcut":
            from .grabcut_baseline import GrabCutSegmenter

            segs.append(GrabCutSegmenter())
        else:
            if not args.model:
                raise InvalidInput("--method model needs --model BUNDLE_DIR")
            from .segmenters import load_model_segmenters, parse_variant

            try:
                variants = dict(parse_variant(v) for v in args.variant)
            except ValueError as e:
                raise InvalidInput(f"--variant: {e}") from None
            _check_variant_keys(variants)
            modes = {"on": [True], "off": [False], "both": [False, True]}[args.crf_mode]
            flips = {"bundle": [None], "on": [True], "off": [False], "both": [False, True]}[args.flip]
            for bundle in args.model:
                model_segs, backend = load_model_segmenters(bundle, backend=args.backend, precision=args.precision,
                                                            crf_modes=modes, flip_modes=flips, threads=args.threads,
                                                            named=len(args.model) > 1, variants=variants)
                segs += model_segs
    return segs, backend


def _check_variant_keys(variants: dict[str, dict]) -> None:
    """InvalidInput naming a --variant key that is not an ``ImagePredictor`` setting."""
    import inspect

    from ivos import ImagePredictor
    from ivos.errors import InvalidInput

    known = set(inspect.signature(ImagePredictor).parameters) - {"model", "click_encoder"}
    for name, overrides in variants.items():
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidInput(f"--variant {name}: {', '.join(unknown)} is not an ImagePredictor setting; "
                               f"known: {', '.join(sorted(known))}")


def _flip_settings(segs: list) -> dict[str, bool]:
    """Whether each model method averages over mirrored views (ImagePredictor.settings.flip)."""
    return {s.name: bool(s.predictor.settings.flip) for s in segs if hasattr(s, "predictor")}


def markdown(report: dict) -> str:
    """The report as markdown: command, environment, one table row per method."""
    k5 = min(5, report["max_clicks"])
    lines = [f"# ivos-bench click: {report['dataset']} ({report['n_images']} images, "
             f"{report['max_clicks']} clicks max)", "",
             f"command: `{report['command']}`", "",
             "environment: " + ", ".join(f"{k}={v}" for k, v in report["environment"].items()), "",
             f"| method | NoC@85 | NoC@90 | #fail@90 | mIoU@1 | mIoU@{k5} | s/click |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in report["methods"].items():
        miou = r["miou_per_click"]
        lines.append(f"| {name} | {r['noc85']:.2f} | {r['noc90']:.2f} | {r['n_fail90']} | "
                     f"{miou[0]:.3f} | {miou[k5 - 1]:.3f} | {r['spc']:.3f} |")
    lines += ["", "By object size (share of the image's pixels):", "",
              "| method | object area | n | NoC@85 | NoC@90 | #fail@90 | mIoU@1 |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in report["methods"].items():
        for label, b in r["by_size"].items():
            lines.append(f"| {name} | {label} | {b['n']} | {b['noc85']:.2f} | {b['noc90']:.2f} | {b['n_fail90']} | "
                         f"{b['miou_per_click'][0]:.3f} |")
    lines += ["", "NoC@t: clicks until IoU >= t (max_clicks if never), RITM clicker; IoU ignores "
              "GrabCut's boundary band; s/click: mean predict() time (set_image excluded)."]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """mIoU vs number of clicks, one curve per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in report["methods"].items():
        miou = r["miou_per_click"]
        ax.plot(range(1, len(miou) + 1), miou, marker="o", ms=3,
                label=f"{name} (NoC@90 {r['noc90']:.2f})")
    for t in (0.85, 0.90):
        ax.axhline(t, color="gray", lw=0.8, ls="--")
    ax.set(xlabel="number of clicks", ylabel="mean IoU", ylim=(0, 1),
           title=f"{report['dataset']} ({report['n_images']} images)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args) -> int:
    from tqdm import tqdm

    from ivos.data_root import datasets_root
    from ivos.errors import IvosError
    from ivos.evaluation.datasets import open_dataset
    from ivos.evaluation.noc import evaluate

    try:
        data = open_dataset(args.dataset, root=datasets_root(args.data_root), split=args.split,
                            images=args.images, masks=args.masks).head(args.limit)
        segs, backend = _segmenters(args)
        with tqdm(total=len(data), desc=f"click {data.name}", unit="img", file=sys.stderr) as bar:
            results = evaluate(segs, data, max_clicks=args.max_clicks, on_sample=lambda _: bar.update())
    except IvosError as e:
        print(f"ivos-bench click: error: {e}", file=sys.stderr)
        return 2
    methods = {name: r.summary() for name, r in results.items()}
    first = next(iter(methods.values()))
    report = {
        "dataset": data.name, "n_images": len(data), "max_clicks": args.max_clicks,
        "command": "ivos-bench " + shlex.join(sys.argv[1:]),
        "environment": {**_environment(backend, [s.name for s in segs], args.threads),
                        **({"flip": flips} if (flips := _flip_settings(segs)) else {})},
        # the first method's headline numbers at top level, for scripts that expect one method
        **{k: first[k] for k in ("noc85", "noc90", "n_fail90", "miou_per_click", "spc")},
        "methods": methods,
    }
    print(markdown(report))
    write_report(json_data=(args.json, report))
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(report, args.plot)
    return 0
