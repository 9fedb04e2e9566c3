"""Sweep of ``ivos.ImagePredictor`` settings (the click CRF's parameters, the smallest zoom-in
view and its expansion, test-time flip averaging): NoC@85/90 (RITM simulated user, the
protocol of ``ivos-bench click``) for each setting, side by side with the network alone, to
choose defaults on data that is neither trained on nor reported:

    python -m ivos.bench.click_sweep --sequences bus elephant lucia rhino tennis \\
        --compat-bilateral 2 5 10 --srgb 5 13 --sxy-bilateral 30 80

(the five DAVIS-2016 train sequences that training holds aside for validation, every 10th
frame). ``--images DIR/images --masks DIR/masks`` adds a folder set, e.g. the held-aside BSDS
objects that ``python -m training.heldaside_objects --out DIR`` writes; each set gets its own
table. Every combination of the listed values is run; the other CRF parameters keep
``ivos.ops.crf.CRF_DEFAULTS``. With several ``--min-zoom-side``, ``--zoom-expansion`` or
``--flip`` values, each combination is run with and without every CRF setting. Prints one
markdown row per setting; one CPU thread.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import ivos
    from ivos.cli import DEFAULT_CLICK
    from ivos.data_root import dataset_dir
    from ivos.errors import InvalidInput
    from ivos.evaluation.datasets import davis2016, folder
    from ivos.evaluation.noc import evaluate
    from ivos.evaluation.segmenter import PredictorSegmenter
    from ivos.image.geometry import MIN_ZOOM_SIDE, ZOOM_EXPANSION
    from ivos.ops.crf import CRF_DEFAULTS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--sequences", nargs="+", default=[], help="DAVIS-2016 sequence names")
    p.add_argument("--images", type=Path, help="a folder set's images (same stems as --masks)")
    p.add_argument("--masks", type=Path, help="a folder set's masks (foreground > 128)")
    p.add_argument("--model", default=str(DEFAULT_CLICK), help="click bundle (default: the shipped ivos-lite0)")
    p.add_argument("--compat-bilateral", nargs="+", type=float, default=[CRF_DEFAULTS["compat_bilateral"]])
    p.add_argument("--srgb", nargs="+", type=float, default=[CRF_DEFAULTS["srgb"]])
    p.add_argument("--sxy-bilateral", nargs="+", type=float, default=[CRF_DEFAULTS["sxy_bilateral"]])
    p.add_argument("--compat-gaussian", nargs="+", type=float, default=[CRF_DEFAULTS["compat_gaussian"]])
    p.add_argument("--sxy-gaussian", nargs="+", type=float, default=[CRF_DEFAULTS["sxy_gaussian"]])
    p.add_argument("--iterations", nargs="+", type=int, default=[CRF_DEFAULTS["iterations"]])
    p.add_argument("--min-zoom-side", nargs="+", type=int, default=[MIN_ZOOM_SIDE],
                   help="smallest zoom-in view side(s), original pixels")
    p.add_argument("--zoom-expansion", nargs="+", type=float, default=[ZOOM_EXPANSION],
                   help="zoom-in view side / mask-and-clicks box side value(s)")
    p.add_argument("--flip", nargs="+", choices=("off", "on"), default=["off"],
                   help="test-time flip averaging setting(s) (ImagePredictor(flip=...))")
    args = p.parse_args(argv)
    if (args.images is None) != (args.masks is None):
        p.error("--images and --masks go together")
    if not args.sequences and args.images is None:
        p.error("name --sequences, or a folder set with --images and --masks (or both)")
    sets = {}
    try:
        if args.sequences:
            root = dataset_dir("DAVIS2016", args.data_root).parent
            sets[f"DAVIS {', '.join(args.sequences)}"] = list(davis2016(root, sequences=args.sequences))
        if args.images is not None:
            sets[f"folder {args.images}"] = list(folder(args.images, args.masks))
    except InvalidInput as e:
        raise SystemExit(str(e)) from None
    model = ivos.load(args.model, threads=1)
    grid = [dict(zip(("compat_bilateral", "srgb", "sxy_bilateral", "compat_gaussian", "sxy_gaussian", "iterations"),
                     values))
            for values in itertools.product(args.compat_bilateral, args.srgb, args.sxy_bilateral,
                                            args.compat_gaussian, args.sxy_gaussian, args.iterations)]
    segmenters = []
    for side, expansion, flip in itertools.product(args.min_zoom_side, args.zoom_expansion, args.flip):
        prefix = (f"min zoom {side}, " if len(args.min_zoom_side) > 1 else "") + \
                 (f"zoom x{expansion:g}, " if len(args.zoom_expansion) > 1 else "") + \
                 (f"flip {flip}, " if len(args.flip) > 1 else "")
        options = {"min_zoom_side": side, "zoom_expansion": expansion, "flip": flip == "on"}
        segmenters.append(PredictorSegmenter(ivos.ImagePredictor(model, crf=False, **options),
                                             name=f"{prefix}no CRF"))
        segmenters += [PredictorSegmenter(ivos.ImagePredictor(model, crf=True, crf_params=params, **options),
                                          name=prefix + _label(params)) for params in grid]
    print(f"model {model.bundle.name} ({model.backend})", flush=True)
    for set_name, samples in sets.items():
        print(f"\n{set_name}: {len(samples)} samples ", end="", flush=True)
        results = evaluate(segmenters, samples, on_sample=lambda s: print(".", end="", flush=True))
        print("\n\n| setting | NoC@85 | NoC@90 | #fail@90 | mIoU@1 | mIoU@5 |\n|---|---:|---:|---:|---:|---:|")
        for name, r in results.items():
            print(f"| {name} | {r.noc85:.2f} | {r.noc90:.2f} | {r.n_fail90} | {r.miou_per_click[0]:.3f} | "
                  f"{r.miou_per_click[4]:.3f} |", flush=True)
    return 0


def _label(params: dict) -> str:
    return "CRF " + " ".join(f"{k}={v:g}" for k, v in params.items())


if __name__ == "__main__":
    sys.exit(main())
