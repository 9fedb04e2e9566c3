"""The measuring part of ``scripts/gpu_check.sh``: click-kernel, click and per-frame network
latency on the GPU through the runner interface, host path against device path.

``--device cuda`` is the check: it refuses to run anywhere but on a CUDA device (ivos._C
built with CUDA and seeing a GPU, torch seeing it, every runner reporting CUDA: ONNX Runtime
silently falls back to the CPU, so its provider list is checked). ``--device cpu`` runs the
same code on the CPU (tests/bench/test_gpu_check.py does, with tiny bundles, so this module
cannot rot on machines without a GPU); rows that exist only on CUDA say so.

Rows (p50 / p90 / p99 in ms, after warm-up; each timed call ends with the results on the host):
* kernel: 20 clicks rendered at 480x854, C++ CPU op vs CUDA kernel (into a device buffer,
  stream synchronised); the CUDA output is checked against the numpy reference first.
* click network: one click's network call at the bundle's working size, (a) host path:
  ``render_clicks`` into ``ctx.inputs["clicks"]`` then ``ctx.run(fetch=("logits",))`` (inputs
  uploaded), (b) device path: ``render_clicks_cuda`` into ``ctx.device_input("clicks")`` then
  the same run; (a) and (b) must agree.
* add_click: ``ImagePredictor.add_click`` as it is (host path, no CRF), 480x854 frame.
* frame network: one OSVOS frame (image + prior uploaded), ``run(fetch=("logits",))`` vs
  ``run()`` (the low/high features copied back too).
* propagation (ONNX Runtime only): ``VideoPredictor`` with the default recipe of
  ``--propagation-bundle`` (osvos-lite0: v2, its trunk and head graphs, ``Model.part``) on a
  moving square, parent head (no fine-tuning), no online adaptation: ms per frame, frame
  CRF included; the parts must run on the device too. Skipped for a bundle without the parts.

    python -m ivos.bench.gpu_check --device cuda --osvos-bundle DIR --out OUT
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ._common import environment, percentiles

FRAME = (480, 854)
N_CLICKS = 20
SIGMA = 5.0


class CheckFailed(SystemExit):
    """A GPU requirement is not met: the check stops with this message (exit status 1)."""

    def __init__(self, message: str):
        super().__init__(f"gpu_check: FAILED: {message}")


def _time(fn: Callable[[], object], iters: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return percentiles(ms)


def require_gpu() -> None:
    """CheckFailed unless ivos._C has CUDA and sees a GPU and torch sees one too."""
    import ivos

    info = ivos.build_info()
    if not info["compiled"].get("cuda"):
        raise CheckFailed(f"ivos._C was built without CUDA ({info['compiled']}): rebuild with IVOS_CUDA=ON")
    if info["machine"]["cuda_devices"] < 1:
        raise CheckFailed("ivos._C sees no CUDA device (driver missing, or no GPU)")
    import torch

    if not torch.cuda.is_available():
        raise CheckFailed(f"torch {torch.__version__} sees no CUDA device (a CPU build of torch?)")


def _clicks(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    return np.stack([rng.uniform(0, width, n), rng.uniform(0, height, n), rng.integers(0, 2, n)], 1).astype(np.float32)


def kernel_rows(device: str, iters: int) -> list[dict]:
    import ivos

    h, w = FRAME
    clicks = _clicks(np.random.default_rng(0), h, w, N_CLICKS)
    out = np.empty(FRAME, np.float32)
    rows = [{"what": f"click kernel, {N_CLICKS} clicks {h}x{w}", "how": "C++ CPU op",
             **_time(lambda: ivos.render_clicks(h, w, clicks, sigma=SIGMA, out=out), iters)}]
    if device != "cuda":
        rows.append({"what": rows[0]["what"], "how": "CUDA kernel: cuda only", "skipped": True})
        return rows
    import torch

    target = torch.full(FRAME, float("nan"), device="cuda")
    stream = torch.cuda.Stream()
    torch.cuda.synchronize()

    def render():
        ivos.render_clicks_cuda(target, h, w, clicks, sigma=SIGMA, stream=stream.cuda_stream)
        stream.synchronize()

    render()
    want = ivos.render_clicks(h, w, clicks, sigma=SIGMA, device="numpy")
    err = float(np.abs(target.cpu().numpy() - want).max())
    if not err <= 1e-5:
        raise CheckFailed(f"the CUDA click kernel differs from the numpy reference by {err:.3g}")
    rows.append({"what": rows[0]["what"], "how": "CUDA kernel into a device buffer + stream sync",
                 **_time(render, iters)})
    return rows


def load_checked(bundle: str | Path, backend: str, device: str):
    """ivos.load with backend and device given; CheckFailed when it runs anywhere else."""
    import ivos

    try:
        model = ivos.load(bundle, backend=backend, device=device, precision="fp32")
    except ivos.BackendUnavailable as e:
        raise CheckFailed(f"{backend} on {device} cannot run here: {e}") from None
    cpu_names = ("CPUExecutionProvider", "torch:cpu")
    if model.device != device or (device == "cuda" and any(n in model.backend for n in cpu_names)):
        raise CheckFailed(f"asked for {backend} on {device}, but {model.backend} runs")
    return model


def click_rows(bundle: str | Path, backend: str, device: str, iters: int) -> list[dict]:
    import ivos

    model = load_checked(bundle, backend, device)
    size = model.working_size[0]
    rng = np.random.default_rng(1)
    clicks = _clicks(rng, size, size, 3)
    contexts = [model.create_context(), model.create_context()]
    for ctx in contexts:
        for name in ("image", "mask"):
            ctx.inputs[name][...] = np.random.default_rng(2).normal(0, 1, ctx.inputs[name].shape)
    host = contexts[0]

    def host_click():
        ivos.render_clicks(size, size, clicks, sigma=SIGMA, out=host.inputs["clicks"][0, 0])
        return host.run(fetch=("logits",))["logits"]

    label = f"click network {size}x{size}, {model.backend}"
    rows = [{"what": label, "how": "host path: render into ctx.inputs, run(fetch=logits)", **_time(host_click, iters)}]
    if device == "cuda":
        dev = contexts[1]
        buf = dev.device_input("clicks")

        def device_click():
            ivos.render_clicks_cuda(buf, size, size, clicks, sigma=SIGMA)
            return dev.run(fetch=("logits",))["logits"]

        err = float(np.abs(device_click() - host_click()).max())
        if not err <= 1e-3:
            raise CheckFailed(f"{model.backend}: device-path logits differ from host-path logits by {err:.3g}")
        rows.append({"what": label, "how": "device path: kernel into ctx.device_input, run(fetch=logits)",
                     **_time(device_click, iters)})
    else:
        rows.append({"what": label, "how": "device path: cuda only", "skipped": True})
    for ctx in contexts:
        ctx.close()
    rows.append(_add_click_row(model, iters))
    return rows


def _add_click_row(model, iters: int) -> dict:
    import ivos

    h, w = FRAME
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    predictor = ivos.ImagePredictor(model, crf=False)
    xs = rng.uniform(0, w, iters + 3)
    ys = rng.uniform(0, h, iters + 3)
    k = iter(range(iters + 3))

    def click():
        i = next(k)
        if i % 4 == 0:  # a fresh image every 4 clicks: first-click full views and zoomed views alike
            predictor.set_image(image)
        predictor.add_click(float(xs[i]), float(ys[i]), True)

    return {"what": f"ImagePredictor.add_click {h}x{w}, {model.backend}", "how": "host path as the predictor "
            "runs today, no CRF", **_time(click, iters)}


def frame_rows(bundle: str | Path, backend: str, device: str, iters: int) -> list[dict]:
    model = load_checked(bundle, backend, device)
    rng = np.random.default_rng(4)
    with model.create_context() as ctx:
        with np.load(model.bundle.artifact("head_parent")) as z:
            for name in z.files:
                ctx.inputs[name][...] = z[name]
        image = rng.normal(0, 1, ctx.inputs["image"].shape).astype(np.float32)
        prior = (rng.random(ctx.inputs["prior"].shape) > 0.5).astype(np.float32)

        def frame(fetch):
            ctx.inputs["image"][...] = image
            ctx.inputs["prior"][...] = prior
            return ctx.run(fetch=fetch)

        h, w = model.working_size
        label = f"frame network {h}x{w}, {model.backend}"
        return [{"what": label, "how": "run(fetch=logits): features stay on the device",
                 **_time(lambda: frame(("logits",)), iters)},
                {"what": label, "how": "run(): logits, low and high copied back", **_time(lambda: frame(None), iters)}]


def propagation_rows(bundle: str | Path, device: str, frames: int) -> list[dict]:
    """The default propagation recipe of ``bundle`` per frame (see the module docstring), or
    no row when the bundle does not ship its trunk and head graphs."""
    import ivos
    from ivos.runtime.bundle import has_osvos_parts

    model = load_checked(bundle, "ort", device)
    if not has_osvos_parts(model.bundle):
        return []
    h, w = FRAME
    clip = np.full((frames + 1, h, w, 3), 90, np.uint8)
    masks = np.zeros((frames + 1, h, w), np.uint8)
    for i in range(frames + 1):  # a bright square moving right
        x = 200 + 6 * i
        clip[i, 180:300, x:x + 120] = (230, 120, 40)
        masks[i, 180:300, x:x + 120] = 1
    with ivos.VideoPredictor(model, finetune_config=ivos.FinetuneConfig(steps=0), adapt_every=0) as vp:
        state = vp.init_state(clip)
        vp.add_new_mask(state, 0, 1, masks[0])
        ms = [r.timings.total_ms for r in vp.propagate_in_video(state) if r.frame_idx > 0]
        parts = [model.part(name).backend for name in ("trunk", "head")]
    if device == "cuda" and any("CPUExecutionProvider" in b for b in parts):
        raise CheckFailed(f"the trunk/head graphs run on {parts}, not on the GPU")
    return [{"what": f"propagation {h}x{w}, {vp.settings.mode} mode, {parts[0]}",
             "how": f"VideoPredictor default recipe, parent head, no adaptation, {frames} frames (CRF included)",
             **percentiles(ms)}]


def gpu_environment(device: str) -> dict:
    """``environment()`` plus the GPU side: torch's CUDA, the GPU's name, ORT's providers."""
    import torch

    env = environment(device_mode=device, torch_cuda=torch.version.cuda)
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    try:
        import onnxruntime as ort

        env["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        env["onnxruntime_providers"] = None
    return env


def markdown(rows: list[dict], notes: list[str], env: dict, command: str) -> str:
    lines = ["# GPU check", "", f"Command: `{command}`", "", f"Environment: `{json.dumps(env)}`", "",
             "| what | how | p50 / p90 / p99 (ms) | n |", "|---|---|---|---|"]
    for r in rows:
        cell = "not run" if r.get("skipped") else f"{r['p50']:.3f} / {r['p90']:.3f} / {r['p99']:.3f}"
        lines.append(f"| {r['what']} | {r['how']} | {cell} | {r.get('n', 0)} |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], required=True,
                   help="cuda: the check (fails without a GPU); cpu: a dry run of the same code")
    p.add_argument("--click-bundle", default="ivos-lite0", help="click bundle with a torch artifact")
    p.add_argument("--osvos-bundle", type=Path, required=True,
                   help="OSVOS bundle with a torch artifact (python -m ivos.export.osvos_torch)")
    p.add_argument("--propagation-bundle", default="osvos-lite0",
                   help="OSVOS bundle whose default propagation recipe is timed per frame (ONNX Runtime)")
    p.add_argument("--frames", type=int, default=30, help="propagated frames of the propagation row")
    p.add_argument("--iters", type=int, default=200, help="timed calls per row")
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.md and gpu_check.json")
    args = p.parse_args(argv)
    from ivos.runtime.backends.ort import ort_cuda_available

    if args.device == "cuda":
        require_gpu()
    rows = kernel_rows(args.device, args.iters)
    notes = []
    backends = ["torch"]
    if args.device == "cpu" or ort_cuda_available():
        backends.append("ort")
    else:
        import onnxruntime as ort

        notes.append(f"ONNX Runtime CUDA provider: not available here (onnxruntime {ort.__version__}, providers "
                     f"{ort.get_available_providers()}): its rows were not run")
    for backend in backends:
        rows += click_rows(args.click_bundle, backend, args.device, args.iters)
        rows += frame_rows(args.osvos_bundle, backend, args.device, args.iters)
    if "ort" in backends:
        rows += propagation_rows(args.propagation_bundle, args.device, args.frames)
    env = gpu_environment(args.device)
    command = "python -m ivos.bench.gpu_check " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, notes, env, command)
    (args.out / "gpu_check.md").write_text(text)
    (args.out / "gpu_check.json").write_text(json.dumps({"rows": rows, "notes": notes, "environment": env}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
