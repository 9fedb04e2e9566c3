"""``python -m ivos.bench.crf_click``: does the click path's CRF cache (lattices built once per
view region, ``ivos.postprocess.CrfCache``) give the same masks as the CRF it replaced, and what
does a click's CRF cost with and without it?

For every image of the GrabCut and Berkeley click benchmarks, the RITM simulated user clicks
``--clicks`` times with ``ivos.ImagePredictor`` (the shipped bundle's CRF settings). The click
path calls ``refine_with_crf`` through ``ivos.image.click_pipeline``'s module global; this script
wraps it: every call runs the cached CRF (what the predictor uses, so the session follows its
masks) and, on a copy of the same input probabilities, the previous commit's CRF (the view
region exactly, no cache: ``reference_refine``) with the previous native module when
``--baseline-native`` names its ``_C*.so`` (else this build's one-shot op, which then isolates
the effect of the region and the cache). Reported per dataset:

* label agreement (probability > 0.5) inside the view region, pooled over all clicks, and the
  worst single click; and over the whole image;
* CRF milliseconds per click, p50 / mean, cached vs reference, measured in the same calls
  (interleaved), and how many clicks built lattices.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

DATASETS = ("GrabCut", "Berkeley")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="ivos-lite0", help="click bundle (default ivos-lite0)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--clicks", type=int, default=8, help="clicks per image (default 8)")
    p.add_argument("--limit", type=int, help="only the first N images of each dataset")
    p.add_argument("--threads", type=int, default=1, help="network and CRF threads (default 1)")
    p.add_argument("--iterations", type=int,
                   help="mean-field iterations of the cached CRF (default: the bundle's); the reference "
                   "keeps the bundle's")
    p.add_argument("--crf-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter of the cached CRF (repeatable; e.g. srgb=8); the reference keeps "
                   "the bundle's")
    p.add_argument("--margin", type=float, help="CrfCache's region margin (ivos.postprocess.CRF_REGION_MARGIN) "
                   "for this run")
    p.add_argument("--reuse-area", type=float, help="CrfCache's reuse bound (ivos.postprocess.CRF_REUSE_AREA) "
                   "for this run")
    p.add_argument("--baseline-native", type=Path,
                   help="the previous commit's ivos _C*.so: the reference CRF runs on it")
    p.add_argument("--data-root", type=Path, help="datasets root (default $IVOS_DATA_ROOT or shared/datasets)")
    p.add_argument("--json", type=Path, help="write the results here")


def load_native(path: Path):
    """Another build of ``ivos._C`` loaded under the name ``ivos_baseline._C``."""
    spec = importlib.util.spec_from_file_location("ivos_baseline._C", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_refine(native, image: np.ndarray, prob: np.ndarray, roi: tuple[int, int, int, int], settings,
                     threads: int) -> None:
    """The previous commit's ``refine_with_crf`` (in place): the dense CRF on exactly ``roi``,
    downscaled to ``settings.max_pixels`` when larger, one-shot, through ``native``."""
    from PIL import Image

    from ivos.ops.crf import PROB_FLOOR

    x0, y0, x1, y1 = roi
    params = dict(settings.params)
    crop_image = np.ascontiguousarray(image[y0:y1, x0:x1])
    crop = np.ascontiguousarray(prob[y0:y1, x0:x1])
    area = (x1 - x0) * (y1 - y0)
    if settings.max_pixels is None or area <= settings.max_pixels:
        prob[y0:y1, x0:x1] = native.dense_crf_cpu(crop_image, crop, prob_floor=PROB_FLOOR, num_threads=threads, **params)
        return
    f = (settings.max_pixels / area) ** 0.5
    small = (max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f)))
    small_image = np.asarray(Image.fromarray(crop_image).resize(small, Image.BILINEAR))
    small_prob = np.clip(np.asarray(Image.fromarray(crop, mode="F").resize(small, Image.BILINEAR)), 0.0, 1.0)
    params["sxy_gaussian"] *= f
    params["sxy_bilateral"] *= f
    refined = native.dense_crf_cpu(small_image, small_prob, prob_floor=PROB_FLOOR, num_threads=threads, **params)
    prob[y0:y1, x0:x1] = np.asarray(Image.fromarray(refined, mode="F").resize((x1 - x0, y1 - y0), Image.BILINEAR))


class Recorder:
    """Stands in for ``refine_with_crf`` in the click pipeline: runs the cached CRF (its result
    is what the predictor gets) and the reference on a copy, alternating which runs first."""

    def __init__(self, cached_fn, native, threads: int, reference_params: dict):
        self.cached_fn, self.native, self.threads = cached_fn, native, threads
        self.reference_params = reference_params
        self.calls: list[dict] = []

    def __call__(self, image, prob, roi, settings, *, cache=None):
        ref = prob.copy()
        builds = cache.builds if cache is not None else 0
        order = (0, 1) if len(self.calls) % 2 == 0 else (1, 0)
        ms = [0.0, 0.0]
        for which in order:
            t = time.perf_counter()
            if which == 0:
                self.cached_fn(image, prob, roi, settings, cache=cache)
            else:
                reference = type(settings)(settings.enabled, self.reference_params, settings.max_pixels)
                reference_refine(self.native, image, ref, roi, reference, self.threads)
            ms[which] = (time.perf_counter() - t) * 1e3
        x0, y0, x1, y1 = roi
        inside = (prob[y0:y1, x0:x1] > 0.5) == (ref[y0:y1, x0:x1] > 0.5)
        whole = (prob > 0.5) == (ref > 0.5)
        self.calls.append({"roi_pixels": int(inside.size), "roi_agree": int(inside.sum()),
                           "image_pixels": int(whole.size), "image_agree": int(whole.sum()),
                           "cached_ms": ms[0], "reference_ms": ms[1],
                           "built": cache is not None and cache.builds > builds})


def summarise(calls: list[dict]) -> dict:
    roi = sum(c["roi_agree"] for c in calls) / sum(c["roi_pixels"] for c in calls)
    image = sum(c["image_agree"] for c in calls) / sum(c["image_pixels"] for c in calls)
    worst = min(c["roi_agree"] / c["roi_pixels"] for c in calls)
    cached = np.array([c["cached_ms"] for c in calls])
    ref = np.array([c["reference_ms"] for c in calls])
    return {"clicks": len(calls), "builds": int(sum(c["built"] for c in calls)),
            "agreement_roi": roi, "agreement_image": image, "agreement_worst_click_roi": worst,
            "cached_ms_p50": float(np.median(cached)), "cached_ms_mean": float(cached.mean()),
            "reference_ms_p50": float(np.median(ref)), "reference_ms_mean": float(ref.mean()),
            "speedup_p50": float(np.median(ref) / np.median(cached)), "speedup_mean": float(ref.mean() / cached.mean())}


def run(args: argparse.Namespace) -> int:
    import ivos
    import ivos.image.click_pipeline as click_pipeline
    import ivos.postprocess as postprocess
    from ivos import _C
    from ivos.data_root import datasets_root
    from ivos.evaluation.clicker import next_click
    from ivos.evaluation.datasets import open_dataset
    from ivos.ops.crf import parse_crf_params

    native = load_native(args.baseline_native) if args.baseline_native else _C
    if args.margin is not None:
        postprocess.CRF_REGION_MARGIN = args.margin
    if args.reuse_area is not None:
        postprocess.CRF_REUSE_AREA = args.reuse_area
    model = ivos.load(args.model, threads=args.threads)
    bundle_params = ivos.ImagePredictor(model, crf=True).settings.crf.params
    params = {**bundle_params, **parse_crf_params(args.crf_param)}
    if args.iterations is not None:
        params["iterations"] = args.iterations
    predictor = ivos.ImagePredictor(model, crf=True, crf_params=params)
    recorder = Recorder(click_pipeline.refine_with_crf, native, args.threads, dict(bundle_params))
    click_pipeline.refine_with_crf = recorder
    root = datasets_root(args.data_root)
    results = {}
    try:
        for name in args.datasets:
            samples = open_dataset(name, root=root).head(args.limit)
            start = len(recorder.calls)
            for k, sample in enumerate(samples):  # one image read at a time
                predictor.set_image(sample.image)
                clicked, pred = [], None
                for i in range(args.clicks):
                    click = next_click(sample.gt, pred, sample.ignore, is_first=i == 0, clicked=clicked)
                    if click is None:
                        break
                    clicked.append(click)
                    pred = predictor.add_click(click.x, click.y, click.positive).mask.astype(bool)
                print(f"{name} {k + 1}/{len(samples)}", file=sys.stderr, end="\r", flush=True)
            results[name] = summarise(recorder.calls[start:])
            results[name]["images"] = len(samples)
    finally:
        click_pipeline.refine_with_crf = recorder.cached_fn
    env = {"python": platform.python_version(), "build_info": ivos.build_info(), "model": args.model,
           "backend": model.backend, "crf": predictor.settings.crf.params, "reference_crf": bundle_params,
           "crf_max_pixels": predictor.settings.crf.max_pixels, "threads": args.threads,
           "cache": {"margin": postprocess.CRF_REGION_MARGIN, "reuse_area": postprocess.CRF_REUSE_AREA},
           "reference_native": str(args.baseline_native or "this build")}
    print(markdown(results))
    print(json.dumps(env))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "environment": env, "argv": sys.argv[1:]}, indent=2) + "\n")
    return 0


def markdown(results: dict) -> str:
    lines = ["| dataset | images | clicks | lattice builds | agreement in view (pooled / worst click) | "
             "agreement, whole image | CRF ms p50 cached / reference | mean cached / reference | speedup p50 / mean |",
             "|---|---:|---:|---:|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['images']} | {r['clicks']} | {r['builds']} | "
                     f"{r['agreement_roi']:.4f} / {r['agreement_worst_click_roi']:.4f} | {r['agreement_image']:.4f} | "
                     f"{r['cached_ms_p50']:.1f} / {r['reference_ms_p50']:.1f} | "
                     f"{r['cached_ms_mean']:.1f} / {r['reference_ms_mean']:.1f} | "
                     f"{r['speedup_p50']:.2f}x / {r['speedup_mean']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivos.bench.crf_click", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    from ivos.errors import InvalidInput

    try:
        return run(parser.parse_args(argv))
    except InvalidInput as e:
        print(f"crf_click: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
