"""Runner A/B on the CPU: the click path with this checkout's ONNX Runtime runner against an
earlier commit's, side by side in one process.

The earlier ``engine/runtime/backends/base.py`` and ``ort.py`` are read with ``git show REF:...`` and
imported as the package ``ivos._runner_prev`` (their relative imports resolve to this
checkout's ``ivos.runtime.bundle`` / ``ivos.errors``). Both runners load the same bundle file with
the same settings; one ``ImagePredictor`` each replays the same simulated-user click session
(``ivos.bench.latency``'s frame and clicker), rounds alternating A-B / B-A so drifting machine
load hits both alike, after one warm-up round. Also timed: the bare ``ctx.run()`` of each
context on the same inputs, alternating run by run.

    python -m ivos.bench.runner_ab --ref 337765e --model ivos-lite0 --threads 1 --rounds 12
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ._common import percentiles

PREV_PACKAGE = "ivos._runner_prev"
PREV_FILES = ("base.py", "ort.py")


def load_previous_backends(ref: str, repo: Path) -> object:
    """The ``ort`` module of ``engine/runtime/backends`` at git ``ref``, imported as ``ivos._runner_prev.ort``."""
    folder = Path(tempfile.mkdtemp(prefix="ivos-runner-prev-"))
    for name in PREV_FILES:
        text = subprocess.run(["git", "-C", str(repo), "show", f"{ref}:engine/runtime/backends/{name}"], check=True,
                              capture_output=True, text=True).stdout
        (folder / name).write_text(text)
    (folder / "__init__.py").write_text("")
    spec = importlib.util.spec_from_file_location(PREV_PACKAGE, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PREV_PACKAGE] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{PREV_PACKAGE}.ort")


def _runner(ort_module, bundle, threads: int, precision: str):
    key = "onnx_int8" if precision == "int8" else "onnx"
    return ort_module.OrtRunner(bundle.artifact(key), bundle.inputs, bundle.outputs, device="cpu", threads=threads,
                                precision=precision, card=bundle.path / "model.json", artifact=key)


def measure(model_name: str, *, ref: str, repo: Path, threads: int, precision: str, rounds: int, clicks: int,
            runs: int) -> dict:
    """{"click": {variant: [total ms per click]}, "infer": {...}, "run": {variant: [ms per ctx.run()]}}."""
    import ivos
    import ivos.runtime.backends.ort as new_ort
    from ivos.bench.latency import click_session, latency_frame
    from ivos.runtime.bundle import read_bundle
    from ivos.runtime.model import resolve_bundle

    bundle = read_bundle(resolve_bundle(model_name))
    prev = load_previous_backends(ref, repo)
    models = {"new": ivos.Model(bundle, _runner(new_ort, bundle, threads, precision)),
              "prev": ivos.Model(bundle, _runner(prev, bundle, threads, precision))}
    predictors = {k: ivos.ImagePredictor(m, crf=False) for k, m in models.items()}
    image, gt, source = latency_frame(ivos.datasets_root(), (480, 854))
    click_ms: dict = {k: [] for k in models}
    infer_ms: dict = {k: [] for k in models}
    for r in range(rounds + 1):
        order = ("new", "prev") if r % 2 == 0 else ("prev", "new")
        for k in order:
            timings = click_session(predictors[k], image, gt, clicks)
            if r > 0:  # round 0 warms up
                click_ms[k].extend(t.total_ms for t in timings)
                infer_ms[k].extend(t.infer_ms for t in timings)
    contexts = {k: m.create_context() for k, m in models.items()}
    rng = np.random.default_rng(0)
    for name in contexts["new"].inputs:
        value = rng.normal(0, 1, contexts["new"].inputs[name].shape).astype(np.float32)
        for ctx in contexts.values():
            ctx.inputs[name][...] = value
    np.testing.assert_allclose(contexts["new"].run()["logits"], contexts["prev"].run()["logits"], atol=1e-5)
    run_ms: dict = {k: [] for k in models}
    for i in range(runs + 2):
        for k in (("new", "prev") if i % 2 == 0 else ("prev", "new")):
            t0 = time.perf_counter()
            contexts[k].run()
            if i >= 2:
                run_ms[k].append((time.perf_counter() - t0) * 1e3)
    contexts["new"].close()
    return {"click": click_ms, "infer": infer_ms, "run": run_ms, "frame_source": source,
            "backend": models["new"].backend, "flip": bool(bundle.postprocess.get("flip", False))}


def report(result: dict, command: str, env: dict) -> str:
    lines = [f"Command: `{command}`", "", f"Environment: `{json.dumps(env)}`", "",
             f"Frame: 480x854 ({result['frame_source']}); backend {result['backend']}, flip {result['flip']} (the bundle default), "
             "no CRF. Rounds alternate new-prev / prev-new after one warm-up round.", "",
             "| what | new p50 / p90 (ms) | previous p50 / p90 (ms) | new / previous (p50) | n |",
             "|---|---|---|---|---|"]
    for key, label in (("click", "add_click, total"), ("infer", "add_click, network stage"),
                       ("run", "ctx.run() alone")):
        new, prev = percentiles(result[key]["new"]), percentiles(result[key]["prev"])
        lines.append(f"| {label} | {new['p50']:.2f} / {new['p90']:.2f} | {prev['p50']:.2f} / {prev['p90']:.2f} | "
                     f"{new['p50'] / prev['p50']:.3f} | {new['n']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ref", required=True, help="git commit whose engine/runtime/backends runner is the baseline")
    p.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="the git checkout")
    p.add_argument("--model", default="ivos-lite0")
    p.add_argument("--precision", default="int8", choices=["int8", "fp32"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=12, help="click sessions per runner (+1 warm-up)")
    p.add_argument("--clicks", type=int, default=5, help="clicks per session")
    p.add_argument("--runs", type=int, default=100, help="bare ctx.run() calls per runner")
    p.add_argument("--out", type=Path, help="write the markdown report here")
    args = p.parse_args(argv)
    import onnxruntime

    import ivos

    result = measure(args.model, ref=args.ref, repo=args.repo, threads=args.threads, precision=args.precision,
                     rounds=args.rounds, clicks=args.clicks, runs=args.runs)
    env = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
           "cpu_threads": ivos.build_info()["machine"]["cpu_threads"], "onnxruntime": onnxruntime.__version__,
           "ref": args.ref, "model": args.model, "precision": args.precision, "threads": args.threads}
    text = report(result, "python -m ivos.bench.runner_ab " + " ".join(sys.argv[1:] if argv is None else argv), env)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
