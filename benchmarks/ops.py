"""``ivos-bench ops``: the native ops side by side with their references, in one run.

* Click rendering, ``ivos.render_clicks(..., device=D)`` for D in numpy (the reference),
  cpu (C++) and cuda (when a GPU is visible), 1/5/20 random clicks at 480x854 and 1080x1920.
* Dense CRF, ``ivos.dense_crf`` vs pydensecrf2 (same unary ``-log(clip(p))``, same
  parameters, 5 iterations) at 480x854 and 240x427 on real DAVIS2016 frames with a noisy
  unary (blurred ground truth plus noise, in [0.05, 0.95]), with the fraction of pixels
  whose label agrees with pydensecrf2. Both timings cover the whole call from
  probabilities to refined probabilities (pydensecrf2's includes computing its unary).
  ``--baseline-native`` adds another build's ``_C`` (an earlier commit's) to the same
  interleaved run, called as ``_C.dense_crf_cpu`` on the same arrays (this build's row goes
  through ``ivos.dense_crf``, whose input checks cost ~0.1 ms), and reports how far its output
  is from this build's.

Implementations are interleaved repeat by repeat (numpy, cpu, cuda, numpy, ...), so machine
noise hits all of them alike; warm-up calls are discarded. Reports p50/p90/p99 in ms and
speedups as ratios of p50s from this one run. Progress goes to stderr, the markdown
report to stdout, ``--json`` gets the summary keys plus every row and the environment.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ._common import environment, percentiles

RENDER_SIZES = ((480, 854), (1080, 1920))
RENDER_CLICKS = (1, 5, 20)
CRF_SIZES = ((480, 854), (240, 427))
CRF_PARAMS = dict(iterations=5, sxy_gaussian=3, compat_gaussian=3, sxy_bilateral=80, srgb=13, compat_bilateral=10)
# (sequence, frame) of DAVIS2016 frames for the CRF; --quick uses the first.
CRF_FRAMES = (("bear", "00000"), ("boat", "00030"), ("dog-agility", "00010"), ("rhino", "00000"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", type=Path, help="datasets root (default $IVOS_DATA_ROOT or shared/datasets)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per configuration (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--sigma", type=float, default=10.0, help="click Gaussian std in pixels (default 10)")
    p.add_argument("--quick", action="store_true", help="few repeats, one CRF frame (a smoke test)")
    p.add_argument("--baseline-native", type=Path,
                   help="another build's _C*.so (e.g. the previous commit's): timed beside this build's dense CRF")
    p.add_argument("--json", type=Path, help="write the results here")


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _percentiles(times_s: list[float]) -> dict[str, float]:
    """Seconds per call -> p50_ms, p90_ms, p99_ms, mean_ms, n."""
    return percentiles(times_s, scale=1e3, suffix="_ms")


def _interleaved(calls: dict, *, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Times each zero-argument callable, round-robin; {name: [seconds per call]}."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


# ---- click rendering -------------------------------------------------------------------------

def render_devices() -> list[str]:
    import ivos

    return ["numpy", "cpu"] + (["cuda"] if ivos.build_info()["machine"]["cuda_devices"] > 0 else [])


def bench_render(*, sigma: float, warmup: int, repeats: int) -> list[dict]:
    """One row per (size, clicks, device): percentiles and speedup over numpy (p50 ratio)."""
    import ivos

    rng = np.random.default_rng(0)
    rows = []
    for h, w in RENDER_SIZES:
        for n in RENDER_CLICKS:
            clicks = np.stack([rng.uniform(0, w - 1, n), rng.uniform(0, h - 1, n), rng.integers(0, 2, n)], axis=1)
            _progress(f"render_clicks {h}x{w}, {n} clicks")
            calls = {dev: (lambda dev=dev: ivos.render_clicks(h, w, clicks, sigma=sigma, device=dev))
                     for dev in render_devices()}
            stats = {dev: _percentiles(t) for dev, t in _interleaved(calls, warmup=warmup, repeats=repeats).items()}
            for dev, s in stats.items():
                rows.append({"op": "render_clicks", "size": f"{h}x{w}", "clicks": n, "impl": dev, **s,
                             "speedup_vs_numpy": stats["numpy"]["p50_ms"] / s["p50_ms"]})
    return rows


# ---- dense CRF -------------------------------------------------------------------------------

def _load_frame(root: Path, seq: str, frame: str, size: tuple[int, int]):
    """(image uint8 HxWx3, gt bool HxW) of a DAVIS2016 frame resized to size (h, w)."""
    from PIL import Image

    davis = root / "DAVIS2016"
    image = Image.open(davis / "JPEGImages" / "480p" / seq / f"{frame}.jpg").convert("RGB")
    mask = Image.open(davis / "Annotations" / "480p" / seq / f"{frame}.png").convert("L")
    h, w = size
    if image.size != (w, h):
        image, mask = image.resize((w, h), Image.BILINEAR), mask.resize((w, h), Image.NEAREST)
    return np.array(image), np.asarray(mask) > 128


def noisy_foreground(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A network-like foreground probability in [0.05, 0.95]: blurred ground truth + noise."""
    from PIL import Image, ImageFilter

    blurred = np.asarray(Image.fromarray((gt * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(6))) / 255.0
    return np.clip(0.5 + 0.7 * (blurred - 0.5) + rng.normal(0, 0.15, gt.shape), 0.05, 0.95).astype(np.float32)


def pydensecrf_foreground(image: np.ndarray, fg: np.ndarray, *, iterations, sxy_gaussian, compat_gaussian,
                          sxy_bilateral, srgb, compat_bilateral) -> np.ndarray:
    """pydensecrf2 on a 2-label problem; returns the HxW foreground marginal."""
    import pydensecrf.densecrf as dcrf

    from ivos.ops.crf import PROB_FLOOR

    h, w = fg.shape
    crf = dcrf.DenseCRF2D(w, h, 2)
    unary = -np.log(np.clip(np.stack([1.0 - fg, fg]), PROB_FLOOR, 1.0)).reshape(2, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=sxy_gaussian, compat=compat_gaussian)
    crf.addPairwiseBilateral(sxy=sxy_bilateral, srgb=srgb, rgbim=image, compat=compat_bilateral)
    return np.asarray(crf.inference(iterations), dtype=np.float32)[1].reshape(h, w)


def bench_crf(root: Path, frames, *, warmup: int, repeats: int, baseline=None) -> list[dict]:
    """One row per (size, implementation): percentiles over all frames' repeats, speedup vs
    pydensecrf2 (p50 ratio) and label agreement with it (mean and min over frames).
    ``baseline``: another build's ``_C`` module, timed as "ivos-baseline"; its row also has
    the largest |difference| from this build's output and the fraction of equal labels."""
    import ivos
    from ivos.ops.crf import PROB_FLOOR

    try:
        import pydensecrf.densecrf  # noqa: F401
        have_ref = True
    except ImportError:
        _progress("pydensecrf2 not installed (pip install ivos[crf-ref]): timing ivos only")
        have_ref = False
    impls = ["ivos"] + (["ivos-baseline"] if baseline is not None else []) + (["pydensecrf2"] if have_ref else [])
    rows = []
    for size in CRF_SIZES:
        times: dict[str, list[float]] = {name: [] for name in impls}
        agreements: dict[str, list[float]] = {name: [] for name in impls}
        baseline_diff, baseline_equal = 0.0, []
        for seq, frame in frames:
            _progress(f"dense_crf {size[0]}x{size[1]} {seq}/{frame}")
            image, gt = _load_frame(root, seq, frame, size)
            fg = noisy_foreground(gt, np.random.default_rng(0))
            calls = {"ivos": lambda: ivos.dense_crf(image, fg, **CRF_PARAMS)}
            if baseline is not None:
                calls["ivos-baseline"] = lambda: baseline.dense_crf_cpu(image, fg, prob_floor=PROB_FLOOR, **CRF_PARAMS)
            if have_ref:
                calls["pydensecrf2"] = lambda: pydensecrf_foreground(image, fg, **CRF_PARAMS)
            outputs = {name: fn() for name, fn in calls.items()}
            if have_ref:
                for name in calls:
                    agreements[name].append(float(np.mean((outputs[name] > 0.5) == (outputs["pydensecrf2"] > 0.5))))
            if baseline is not None:
                baseline_diff = max(baseline_diff, float(np.abs(outputs["ivos-baseline"] - outputs["ivos"]).max()))
                baseline_equal.append(float(np.mean((outputs["ivos-baseline"] > 0.5) == (outputs["ivos"] > 0.5))))
            for name, t in _interleaved(calls, warmup=warmup, repeats=repeats).items():
                times[name] += t
        ref_stats = _percentiles(times["pydensecrf2"]) if have_ref else None
        for name in impls:
            s = _percentiles(times[name])
            row = {"op": "dense_crf", "size": f"{size[0]}x{size[1]}", "impl": name, "frames": len(frames), **s,
                   "speedup_vs_pydensecrf2": ref_stats["p50_ms"] / s["p50_ms"] if have_ref else None}
            if have_ref and name != "pydensecrf2":
                row["agreement_mean"] = float(np.mean(agreements[name]))
                row["agreement_min"] = float(np.min(agreements[name]))
            if name == "ivos-baseline":
                row["max_abs_diff_vs_ivos"], row["labels_equal_ivos"] = baseline_diff, float(np.min(baseline_equal))
            rows.append(row)
    return rows


CRF_STAGES = ("build_ms", "normalize_ms", "unary_ms", "splat_ms", "blur_ms", "slice_ms", "update_ms")
"""Stages of one native dense CRF call (``ivos._C.dense_crf_cpu(..., profile=True)``):
lattice construction (the pixels' features made on the fly), normalisation (one filter pass
per kernel), unary, then per mean-field iteration splat / blur / slice / update. The
two-label case fuses slice, update and the next splat into one pass per iteration, reported
as update_ms."""


def profile_crf(root: Path, frames, *, repeats: int) -> list[dict]:
    """Per size: the p50 over frames x repeats of each stage's ms in one ivos dense CRF call
    (the timed calls' parameters and threads)."""
    from ivos import _C
    from ivos.ops.crf import PROB_FLOOR

    rows = []
    for size in CRF_SIZES:
        stages: dict[str, list[float]] = {k: [] for k in CRF_STAGES}
        for seq, frame in frames:
            image, gt = _load_frame(root, seq, frame, size)
            fg = noisy_foreground(gt, np.random.default_rng(0))
            for _ in range(repeats):
                _, prof = _C.dense_crf_cpu(image, fg, prob_floor=PROB_FLOOR, profile=True, **CRF_PARAMS)
                for k in CRF_STAGES:
                    stages[k].append(prof[k])
        rows.append({"size": f"{size[0]}x{size[1]}", **{k: float(np.median(v)) for k, v in stages.items()}})
    return rows


# ---- report ----------------------------------------------------------------------------------

def summary(rows: list[dict]) -> dict:
    """The headline numbers: 480x854, 20 clicks for rendering."""
    def pick(op, impl, **match):
        return next((r for r in rows if r["op"] == op and r["impl"] == impl
                     and all(r.get(k) == v for k, v in match.items())), None)

    render = pick("render_clicks", "cpu", size="480x854", clicks=20)
    crf = pick("dense_crf", "ivos", size="480x854")
    baseline = pick("dense_crf", "ivos-baseline", size="480x854")
    out = {
        "render_speedup_cpp_vs_numpy": render["speedup_vs_numpy"] if render else None,
        "crf_speedup_vs_pydensecrf2": crf["speedup_vs_pydensecrf2"] if crf else None,
        "crf_agreement_vs_pydensecrf2": crf.get("agreement_mean") if crf else None,
    }
    if crf and baseline:
        out["crf_speedup_vs_baseline"] = baseline["p50_ms"] / crf["p50_ms"]
    return out


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"Command: `{report['command']}`", "",
             f"Environment: CPU {env['cpu']}, {env['cpu_threads']} threads (ivos uses {env['native_threads']}), "
             f"versions {json.dumps(env['versions'])}", "",
             f"Inputs: render_clicks draws N clicks uniform over the image (seed 0, random labels) with "
             f"sigma = {report['sigma']:g} px, each call returning a new array; dense_crf runs on DAVIS2016 "
             f"frames {', '.join('/'.join(f) for f in report['crf_frames'])} resized to the size, with the "
             "unary of a network-like foreground: the ground truth blurred (Gaussian, radius 6), "
             "0.5 + 0.7 (blurred - 0.5) + N(0, 0.15) noise, clipped to [0.05, 0.95]; "
             f"{report['repeats']} timed calls per configuration after {report['warmup']} warm-up calls, "
             "implementations interleaved call by call.", "",
             "Summary (480x854; rendering with 20 clicks): " + ", ".join(
                 f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in report["summary"].items()),
             "", "| op | size | clicks | impl | p50 ms | p90 ms | p99 ms | n | speedup | agreement (min) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["rows"]:
        speedup = r.get("speedup_vs_numpy", r.get("speedup_vs_pydensecrf2"))
        vs = "vs numpy" if r["op"] == "render_clicks" else "vs pydensecrf2"
        agree = f"{r['agreement_mean']:.4f} ({r['agreement_min']:.4f})" if "agreement_mean" in r else ""
        lines.append(f"| {r['op']} | {r['size']} | {r.get('clicks', '')} | {r['impl']} | {r['p50_ms']:.2f} | "
                     f"{r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['n']} | "
                     f"{'' if speedup is None else f'{speedup:.2f}x {vs}'} | {agree} |")
    for r in report["rows"]:
        if "max_abs_diff_vs_ivos" in r:
            lines += ["", f"ivos-baseline ({report['baseline_native']}) at {r['size']}: largest |difference| from "
                      f"this build's output {r['max_abs_diff_vs_ivos']:.3g}, labels equal on "
                      f"{r['labels_equal_ivos']:.4f} of the pixels (worst frame)."]
    if report.get("crf_stages"):
        lines += ["", "Dense CRF (ivos), ms per call by stage, p50 over frames x calls (`update` is the fused "
                  "slice + update + splat pass of the two-label case):", "",
                  "| size | " + " | ".join(k[:-3] for k in CRF_STAGES) + " | sum |",
                  "| --- |" + " --- |" * (len(CRF_STAGES) + 1)]
        for r in report["crf_stages"]:
            lines.append(f"| {r['size']} | " + " | ".join(f"{r[k]:.2f}" for k in CRF_STAGES)
                         + f" | {sum(r[k] for k in CRF_STAGES):.2f} |")
    lines += ["", "build_info: `" + json.dumps(env["build_info"]) + "`"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ivos.data_root import datasets_root

    repeats = min(args.repeats, 3) if args.quick else args.repeats
    warmup = min(args.warmup, 1) if args.quick else args.warmup
    rows = bench_render(sigma=args.sigma, warmup=warmup, repeats=repeats)
    root = datasets_root(args.data_root)
    frames = CRF_FRAMES[:1] if args.quick else CRF_FRAMES
    crf_stages = []
    if root is not None and (root / "DAVIS2016" / "JPEGImages").is_dir():
        baseline = None
        if args.baseline_native is not None:
            from .crf_click import load_native

            baseline = load_native(args.baseline_native)
        rows += bench_crf(root, frames, warmup=warmup, repeats=repeats, baseline=baseline)
        _progress("dense_crf stage profile")
        crf_stages = profile_crf(root, frames, repeats=max(1, repeats // 3))
    else:
        _progress(f"DAVIS2016 not found under {root} (--data-root or IVOS_DATA_ROOT): dense CRF skipped")
    from ivos import build_info

    report = {"command": " ".join(["ivos-bench", "ops", *_argv_of(args)]),
              "baseline_native": str(args.baseline_native) if args.baseline_native else None,
              "sigma": args.sigma, "repeats": repeats, "warmup": warmup, "crf_frames": [list(f) for f in frames],
              "summary": summary(rows), "environment": environment(build_info=build_info()), "rows": rows,
              "crf_stages": crf_stages}
    print(markdown(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**report["summary"], **report}, indent=1))
    return 0


def _argv_of(args: argparse.Namespace) -> list[str]:
    """The flags of this run (as given or defaulted), for the report. With --quick the
    repeats and warm-up it caps are left out (the report states the ones used)."""
    out = []
    keys = ("data_root", "sigma", "baseline_native", "json") if args.quick else (
        "data_root", "repeats", "warmup", "sigma", "baseline_native", "json")
    for key in keys:
        out += [f"--{key.replace('_', '-')}", str(getattr(args, key))] if getattr(args, key) is not None else []
    return out + (["--quick"] if args.quick else [])
