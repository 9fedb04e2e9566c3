"""``ivos-export``: trained checkpoints -> model bundles the runtime loads.

  ivos-export click CHECKPOINT --out DIR       ONNX + torch.export program + model.json,
                                               verified against torch right after export
  ivos-export int8 BUNDLE                      adds an int8 ONNX (CPU) calibrated on DAVIS train
                                               (an OSVOS bundle: an int8 trunk, calibrated on
                                               coco128-seg's training photos)
  ivos-export tensorrt BUNDLE                  builds an FP16 TensorRT plan for this GPU
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np


def _click(args: argparse.Namespace) -> int:
    from ivos.ops.crf import parse_crf_params

    from .checkpoint import load_click_model
    from .click_encodings import click_channels
    from .onnx_export import export_click_bundle

    model, config, meta = load_click_model(args.checkpoint)
    card_extra = {
        "architecture": {"config": {k: v for k, v in vars(config).items()},
                         "parameters": int(sum(p.numel() for p in model.parameters()))},
        "training": {k: v for k, v in meta.items()
                     if k not in ("click_sigma", "working_size", "imagenet_mean", "imagenet_std")},
    }
    if args.metrics:
        card_extra["metrics"] = json.loads(Path(args.metrics).read_text())
    postprocess = {"crf": args.crf, "crf_params": parse_crf_params(args.crf_param), "flip": args.flip}
    for key in ("crf_min_area", "refocus_below", "refocus_min_side"):  # ivos.settings.ClickSettings
        value = getattr(args, key)
        if value is not None:
            if not 0.0 <= value <= 1.0:
                raise SystemExit(f"ivos-export click: --{key.replace('_', '-')} must be in [0, 1], got {value}")
            postprocess[key] = value
    working_size = int(meta["working_size"]) if args.working_size is None else args.working_size
    if working_size < 32 or working_size % 8:
        raise SystemExit(f"ivos-export click: --working-size must be a multiple of 8 and >= 32, got {working_size}")
    card = export_click_bundle(
        model, args.out, name=args.name or config.name, version=args.version,
        click_encoding=config.click_encoding, click_sigma=float(meta["click_sigma"]),
        click_channels=click_channels(config.click_encoding), working_size=working_size,
        mean=tuple(meta["imagenet_mean"]), std=tuple(meta["imagenet_std"]), card_extra=card_extra,
        postprocess=postprocess)
    print(f"wrote {args.out} ({card['name']}): ORT vs torch max abs diff {card['export']['parity_max_abs_diff']:.2e}")
    return 0


def _int8(args: argparse.Namespace) -> int:
    from ivos.data_root import datasets_root
    from ivos.evaluation.datasets import open_dataset
    from ivos.runtime.bundle import read_bundle

    from .quantize import quantize_bundle, record_calibration_inputs

    root = datasets_root(args.data_root)
    if read_bundle(args.bundle).task == "osvos":
        return _int8_trunk(args, root)
    if args.split in ("dev", "val", "test"):
        raise SystemExit(f"ivos-export int8: calibrate on training data, not the evaluation split {args.split!r}")
    dataset = open_dataset("DAVIS2016", root=root, split=args.split)
    picks = np.linspace(0, len(dataset) - 1, min(args.images, len(dataset))).round().astype(int)
    samples = (dataset[int(i)] for i in picks)
    inputs = record_calibration_inputs(args.bundle, samples, clicks_per_sample=args.clicks)
    source = f"DAVIS2016 {args.split}: {len(picks)} frames x up to {args.clicks} simulated clicks"
    section = quantize_bundle(args.bundle, inputs, source=source, reduce_range=args.reduce_range)
    a = section["agreement_with_float"]
    print(f"wrote {args.bundle / section['file']}: {source}; vs float on {a['n_inputs']} held-back inputs: "
          f"mask IoU mean {a['mask_iou_mean']:.4f} (min {a['mask_iou_min']:.4f}), "
          f"logit max abs diff {a['logit_max_abs_diff']:.3f}")
    return 0


def _int8_trunk(args: argparse.Namespace, root: Path) -> int:
    """An OSVOS bundle's int8 trunk, calibrated on coco128-seg's training images: photos that
    are in no DAVIS sequence, so no video cross-validation fold's held-out frames set its ranges."""
    from PIL import Image

    from ivos.evaluation.datasets import coco128_split

    from .quantize import quantize_osvos_trunk, trunk_calibration_inputs

    _, stems = coco128_split(root)
    folder = root / "coco128-seg" / "images"
    picks = [stems[int(i)] for i in np.linspace(0, len(stems) - 1, min(args.images, len(stems))).round().astype(int)]
    files = [next(folder.glob(f"{stem}.*")) for stem in picks]
    images = (np.asarray(Image.open(f).convert("RGB")) for f in files)
    inputs = trunk_calibration_inputs(args.bundle, images)
    source = f"coco128-seg training images: {len(files)} photos, each whole and one random window, letterboxed"
    section = quantize_osvos_trunk(args.bundle, inputs, source=source, reduce_range=args.reduce_range)
    a = section["agreement_with_float"]
    print(f"wrote {args.bundle / section['file']}: {source}; vs float on {a['n_inputs']} held-back inputs: "
          + ", ".join(f"{k} {v:.3f}" for k, v in a.items() if k != "n_inputs"))
    return 0


def _tensorrt(args: argparse.Namespace) -> int:
    from .tensorrt import build_plan

    entry = build_plan(args.bundle, fp16=not args.fp32, workspace_mib=args.workspace_mib)
    print(f"wrote {entry['file']} for {entry['compute_capability']} (TensorRT {entry['tensorrt_version']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    from ivos._cli_help import plain, version

    parser = argparse.ArgumentParser(prog="ivos-export", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("click", help="export a click-refinement checkpoint to a bundle")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--name", help="bundle name (default: the config name)")
    p.add_argument("--version", default="1", help="bundle version string")
    p.add_argument("--metrics", type=Path, help="JSON file of measured metrics to put in the model card")
    p.add_argument("--crf", action=argparse.BooleanOptionalAction, default=False,
                   help="whether predictors run the dense CRF by default")
    p.add_argument("--crf-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a dense-CRF parameter stored in the bundle (repeatable; e.g. srgb=5, chosen with "
                        "python -m ivos.bench.click_sweep); unset ones keep ivos.dense_crf's defaults")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=False,
                   help="whether predictors average the network over the view and its mirror image by default "
                        "(one more network run per click)")
    p.add_argument("--working-size", type=int, default=None,
                   help="side of the square view the network runs at, px (default: the checkpoint's, 320)")
    p.add_argument("--crf-min-area", type=float, default=None, metavar="SHARE",
                   help="predictors run the CRF only on masks covering at least this share of the image "
                        "(postprocess.crf_min_area; default: not written, i.e. always)")
    p.add_argument("--refocus-below", type=float, default=None, metavar="SHARE",
                   help="a whole-image view whose mask covers less than this share of the image is followed by "
                        "a zoom-in look (postprocess.refocus_below; default: not written, i.e. off)")
    p.add_argument("--refocus-min-side", type=float, default=None, metavar="SHARE",
                   help="that zoom-in view's smallest side as a share of the image's longer side "
                        "(postprocess.refocus_min_side; default: not written, ivos.settings.REFOCUS_MIN_SIDE)")
    p.set_defaults(func=_click)
    p = sub.add_parser("int8", help="add an int8 ONNX Runtime (CPU) network to a click bundle, or an int8 trunk "
                       "to an OSVOS bundle")
    p.add_argument("bundle", type=Path)
    p.add_argument("--data-root", type=Path, help="datasets root (default $IVOS_DATA_ROOT or ../shared/datasets)")
    p.add_argument("--split", default="train", help="DAVIS2016 split to calibrate on (training data only)")
    p.add_argument("--images", type=int, default=48, help="frames (photos for an OSVOS trunk) to calibrate on, spread over the set")
    p.add_argument("--clicks", type=int, default=4, help="simulated clicks per frame")
    p.add_argument("--reduce-range", action=argparse.BooleanOptionalAction, default=True,
                   help="weights on 7 bits, on which ONNX Runtime's int8 kernels cannot saturate on x86 CPUs "
                        "without VNNI (default; --no-reduce-range: 8-bit weights, which saturate there)")
    p.set_defaults(func=_int8)
    p = sub.add_parser("tensorrt", help="build a TensorRT plan for this GPU into a bundle")
    p.add_argument("bundle", type=Path)
    p.add_argument("--fp32", action="store_true", help="build in FP32 instead of FP16")
    p.add_argument("--workspace-mib", type=int, default=1024)
    p.set_defaults(func=_tensorrt)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
