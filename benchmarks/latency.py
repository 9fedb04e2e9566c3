"""``ivos-bench latency``: click -> mask latency of ``ivos.ImagePredictor`` per stage
(prepare, render, infer, post, CRF), ONNX Runtime (float, and int8 when the bundle ships
it) vs torch eager on the same bundle in the same run, with and without the dense CRF, for a
480x854 and a 1080x1920 frame.

Each click session replays the RITM simulated user on a real DAVIS frame (so the zoom-in
views are the ones a user gets); without the data set, a synthetic frame with an ellipse.
Sessions are interleaved across configurations (ort, torch, ort+crf, ...) round by round,
so machine noise hits all of them alike; the first round is warm-up and discarded.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from ._common import environment, percentiles, write_report

log = logging.getLogger("ivos.bench")

FRAME_SIZES = ((480, 854), (1080, 1920))
BACKEND_CONFIGS = {"ort": ("ort", "fp32"), "ort-int8": ("ort", "int8"), "torch": ("torch", "fp32"),
                   "tensorrt": ("tensorrt", "auto")}
"""--backends name -> (ivos.load backend, precision)."""
STAGES = ("prepare_ms", "render_ms", "infer_ms", "post_ms", "crf_ms", "total_ms")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", nargs="+", default=["ivos-lite0"],
                   help="bundle folder(s) or shipped model name(s) (default ivos-lite0); several are measured "
                   "side by side, interleaved, rows named <bundle>/<backend>")
    p.add_argument("--backends", nargs="+", choices=sorted(BACKEND_CONFIGS),
                   help="configurations to compare (default: ort, ort-int8 when the bundle has it, torch); "
                   "'ort' and 'torch' run the float network")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device for every backend")
    p.add_argument("--threads", type=int, default=0, help="backend CPU threads (0 = one per core)")
    p.add_argument("--rounds", type=int, default=6, help="click sessions per configuration (+1 warm-up)")
    p.add_argument("--clicks", type=int, default=5, help="clicks per session")
    p.add_argument("--data-root", type=Path, help="datasets root (default $IVOS_DATA_ROOT or shared/datasets)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after the timed rounds, one more session per configuration under cProfile: report its "
                        "N functions with the most self time (0 = off)")


def latency_frame(root: Path | None, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, str]:
    """(image uint8 HxWx3, gt bool HxW, source) at ``size`` (height, width)."""
    from PIL import Image

    h, w = size
    davis = root / "DAVIS2016" if root else None
    if davis and (davis / "JPEGImages/480p/bear/00000.jpg").is_file():
        image = Image.open(davis / "JPEGImages/480p/bear/00000.jpg").convert("RGB").resize((w, h), Image.BILINEAR)
        gt = Image.open(davis / "Annotations/480p/bear/00000.png").convert("L").resize((w, h), Image.NEAREST)
        return np.asarray(image), np.asarray(gt) > 128, "DAVIS2016 bear/00000"
    yy, xx = np.mgrid[0:h, 0:w]
    gt = ((xx - w / 2) / (w / 5)) ** 2 + ((yy - h / 2) / (h / 4)) ** 2 < 1
    rng = np.random.default_rng(0)
    image = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
    image[gt] += np.array([150, 60, 30], np.uint8)
    return image, gt, "synthetic ellipse"


def click_session(predictor, image: np.ndarray, gt: np.ndarray, n_clicks: int, profiler=None) -> list:
    """One simulated-user session; returns the Timings of each click. With a ``profiler``
    (a context manager), the predictor's calls run inside it, the simulated user's outside."""
    from contextlib import nullcontext

    from ivos.evaluation.clicker import next_click

    inside = profiler if profiler is not None else nullcontext()
    with inside:
        predictor.set_image(image)
    timings, clicked, pred = [], [], None
    for i in range(n_clicks):
        click = next_click(gt, pred, is_first=(i == 0), clicked=clicked)
        if click is None:
            break
        clicked.append(click)
        with inside:
            result = predictor.add_click(click.x, click.y, click.positive)
        pred = result.mask.astype(bool)
        timings.append(result.timings)
    return timings


def measure(models: dict, frames: dict, *, rounds: int, clicks: int, progress=None, profile: int = 0) -> list[dict]:
    """Rows of per-stage percentiles for every (frame, backend, crf) configuration; with
    ``profile`` > 0 each row also has ``profile``: the top functions of one more, untimed
    session (``ivos.bench.profiling``)."""
    import ivos

    from .profiling import FunctionProfile

    configs = [(fname, bname, crf) for fname in frames for bname in models for crf in (False, True)]
    predictors = {c: ivos.ImagePredictor(models[c[1]], crf=c[2]) for c in configs}
    samples: dict = {c: [] for c in configs}
    for r in range(rounds + 1):
        for c in configs:
            timings = click_session(predictors[c], *frames[c[0]][:2], clicks)
            if r > 0:  # round 0 warms up caches, allocators and thread pools
                samples[c].extend(timings)
            if progress:
                progress.update(1)
    rows = []
    for (fname, bname, crf), timings in samples.items():
        row = {"frame": fname, "backend": bname, "runs": models[bname].backend, "crf": crf,
               "flip": predictors[(fname, bname, crf)].settings.flip}
        for stage in STAGES:
            row[stage] = percentiles([getattr(t, stage) for t in timings])
        if profile > 0:
            profiler = FunctionProfile()
            click_session(predictors[(fname, bname, crf)], *frames[fname][:2], clicks, profiler)
            row["profile"] = profiler.top(profile)
        rows.append(row)
    return rows


def summary_keys(rows: list[dict]) -> dict[str, float]:
    """The headline keys for the 480x854 frame: ``<backend>_p50_ms``, ``<backend>_crf_p50_ms``
    and the ORT/torch speed ratio of the network stage and of the whole click; with several
    bundles each key starts with ``<bundle>/`` (rows' ``backend`` is ``<bundle>/<backend>``)."""
    out = {}
    for row in rows:
        if row["frame"] != "480x854":
            continue
        key = f"{row['backend'].replace('-', '_')}{'_crf' if row['crf'] else ''}_p50_ms"
        out[key] = row["total_ms"]["p50"]
        out[key.replace("_p50_ms", "_infer_p50_ms")] = row["infer_ms"]["p50"]
    prefixes = {k.rsplit("/", 1)[0] + "/" if "/" in k else "" for k in out}
    for prefix in prefixes:
        torch_total, torch_infer = out.get(f"{prefix}torch_p50_ms"), out.get(f"{prefix}torch_infer_p50_ms")
        for name in ("ort", "ort_int8"):
            if torch_total and f"{prefix}{name}_p50_ms" in out:
                out[f"{prefix}{name}_speedup_vs_torch_total"] = torch_total / out[f"{prefix}{name}_p50_ms"]
                out[f"{prefix}{name}_speedup_vs_torch_infer"] = torch_infer / out[f"{prefix}{name}_infer_p50_ms"]
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| frame | configuration | runs | CRF | flip | total p50 / p90 / p99 (ms) | prepare | render | infer | post | CRF |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        total = r["total_ms"]
        stages = " | ".join(f"{r[s]['p50']:.1f}" for s in STAGES[:-1])
        lines.append(f"| {r['frame']} | {r['backend']} | {r['runs']} | {'on' if r['crf'] else 'off'} | "
                     f"{'on' if r.get('flip') else 'off'} | "
                     f"{total['p50']:.1f} / {total['p90']:.1f} / {total['p99']:.1f} | {stages} |")
    return "\n".join(lines)


def _default_backends(bundle: str, device: str) -> list[str]:
    """ort (+ ort-int8 when the bundle ships an int8 network and the device is the CPU) + torch."""
    from ivos.runtime.bundle import read_bundle
    from ivos.runtime.model import resolve_bundle

    has_int8 = read_bundle(resolve_bundle(bundle)).has_artifact("onnx_int8")
    return ["ort", "ort-int8", "torch"] if has_int8 and device == "cpu" else ["ort", "torch"]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import ivos
    from ivos.data_root import datasets_root

    from .profiling import profile_markdown

    models = {}
    for bundle in args.model:
        for b in args.backends or _default_backends(bundle, args.device):
            key = b if len(args.model) == 1 else f"{Path(bundle).name}/{b}"
            models[key] = ivos.load(bundle, backend=BACKEND_CONFIGS[b][0], precision=BACKEND_CONFIGS[b][1],
                                    device=args.device, threads=args.threads)
    root = datasets_root(args.data_root)
    frames = {f"{h}x{w}": latency_frame(root, (h, w)) for h, w in FRAME_SIZES}
    total = (args.rounds + 1) * len(frames) * len(models) * 2
    with tqdm(total=total, desc="click sessions", file=sys.stderr) as bar:
        rows = measure(models, frames, rounds=args.rounds, clicks=args.clicks, progress=bar, profile=args.profile)
    env = environment(backends={k: m.backend for k, m in models.items()})
    env["frames"] = {k: v[2] for k, v in frames.items()}
    result = {**summary_keys(rows), "model": [str(m) for m in args.model], "rows": rows, "environment": env,
              "protocol": f"{args.rounds} sessions x {args.clicks} RITM clicks per configuration, interleaved"}
    print(f"environment: {json.dumps(env)}\n")
    print(markdown(rows))
    for row in rows:
        if "profile" in row:
            print("\n" + profile_markdown(row["profile"], f"profile: {row['frame']} {row['backend']} CRF "
                                          f"{'on' if row['crf'] else 'off'}, one session of {args.clicks} clicks"))
    headline = {k: round(v, 2) for k, v in result.items() if isinstance(v, float)}
    print(f"\n{json.dumps(headline)}")
    write_report(json_data=(args.json, result))
    return 0
