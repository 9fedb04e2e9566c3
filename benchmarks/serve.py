"""``python -m ivos.bench.serve``: what serving over HTTP costs per click, and clicks/s under
concurrency, measured side by side in one run.

* Overhead: the same click sequences (``--clicks`` per image, ``--rounds`` images) through an
  in-process ``ivos.ImagePredictor`` and through ``ivos serve`` on loopback (a uvicorn
  subprocess, the same bundle and engine threads), rounds alternating which goes first. The
  HTTP time is the client's wall time per request (JSON, mask as COCO RLE, auth-free loopback).
  Reported: p50/p90/p99 of both and their ratio (HTTP / in-process).
* Throughput: 1, 4 and 16 sessions clicking at once (one thread each, ``--clicks`` clicks per
  session), over HTTP and in-process (one predictor per thread, the model shared), clicks/s and
  per-click p50/p99.

Writes ``--out`` (markdown, the command at the top) and the same figures as JSON next to it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import ivos
from ivos.serve.testing import ServerProcess

from ._common import write_report

SIZE = (480, 854)


def frame() -> np.ndarray:
    """(480, 854, 3) uint8: the demo clip's first frame resized (always shipped)."""
    from PIL import Image

    source = ivos.open_video(Path(ivos.__file__).parent / "data" / "demo_clip.mp4", cache_size=1)
    image = Image.fromarray(np.asarray(source[0])).resize((SIZE[1], SIZE[0]), Image.BILINEAR)
    source.close()
    return np.asarray(image)


def clicks(seed: int, n: int) -> list[tuple[float, float, bool]]:
    """A fixed click sequence: the first on the object (the demo's click, scaled), then a mix."""
    rng = np.random.default_rng(seed)
    sy, sx = SIZE[0] / 272, SIZE[1] / 480
    out = [(120 * sx, 136 * sy, True)]
    for _ in range(n - 1):
        out.append((float(rng.uniform(0, SIZE[1])), float(rng.uniform(0, SIZE[0])), bool(rng.random() < 0.5)))
    return out


def png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def http_session(url: str, image_png: bytes, sequence, http=None) -> list[float]:
    """ms per click of one session over HTTP (the upload is not timed)."""
    import httpx

    own = http is None
    http = http or httpx.Client(base_url=url, timeout=120)
    try:
        sid = http.post("/v1/images", files={"image": ("f.png", image_png, "image/png")}).json()["session_id"]
        out = []
        for x, y, p in sequence:
            t0 = time.perf_counter()
            r = http.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y, "positive": p})
            out.append((time.perf_counter() - t0) * 1e3)
            if r.status_code != 200:
                raise RuntimeError(f"click failed: {r.status_code} {r.text[:300]}")
        http.delete(f"/v1/images/{sid}")
        return out
    finally:
        if own:
            http.close()


def request_floor(http, image_png: bytes, n: int = 100) -> list[float]:
    """ms per ``POST .../undo`` on a session without clicks: the whole request path (routing,
    session lookup in the store, the hop to a request thread and back, JSON) with no network
    run: what HTTP adds to a click at the least."""
    sid = http.post("/v1/images", files={"image": ("f.png", image_png, "image/png")}).json()["session_id"]
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        http.post(f"/v1/images/{sid}/undo")
        out.append((time.perf_counter() - t0) * 1e3)
    http.delete(f"/v1/images/{sid}")
    return out


def local_session(model, image: np.ndarray, sequence) -> list[float]:
    """ms per click of one in-process ImagePredictor session (``set_image`` not timed)."""
    predictor = ivos.ImagePredictor(model)
    predictor.set_image(image)
    out = []
    for x, y, p in sequence:
        t0 = time.perf_counter()
        predictor.add_click(x, y, p)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def stats(ms: list[float]) -> dict:
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"n": len(ms), "p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(np.mean(ms))}


def concurrent(run, sessions: int) -> dict:
    """``run(i) -> ms list`` on ``sessions`` threads at once: clicks/s and per-click stats."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        per = list(pool.map(run, range(sessions)))
    wall = time.perf_counter() - t0
    ms = [v for p in per for v in p]
    return {"sessions": sessions, "clicks": len(ms), "wall_s": wall, "clicks_per_s": len(ms) / wall, **stats(ms)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ivos.bench.serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ivos-lite0", help="click bundle (shipped name or folder)")
    p.add_argument("--threads", type=int, default=1, help="engine threads, in-process and in the server")
    p.add_argument("--request-threads", type=int, default=4, help="the server's request threads")
    p.add_argument("--rounds", type=int, default=10, help="image sessions per side for the overhead")
    p.add_argument("--clicks", type=int, default=20, help="clicks per session")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/serve.md"))
    args = p.parse_args(argv)

    import httpx

    image = frame()
    image_png = png(image)
    model = ivos.load(args.model, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", ["--model", args.model, "--threads", str(args.threads),
                                                    "--request-threads", str(args.request_threads), "--request-queue",
                                                    "256", "--live-images", "64"], startup_s=120).start()
        url = server.url
        try:
            with httpx.Client(base_url=url, timeout=120) as http:
                http_session(url, image_png, clicks(0, 5), http)  # warm-up: both sides
                local_session(model, image, clicks(0, 5))
                floor_ms = request_floor(http, image_png)
                local_ms, http_ms = [], []
                for r in range(args.rounds):
                    seq = clicks(r + 1, args.clicks)
                    sides = [("local", lambda: local_ms.extend(local_session(model, image, seq))),
                             ("http", lambda: http_ms.extend(http_session(url, image_png, seq, http)))]
                    for _, go in (sides if r % 2 == 0 else sides[::-1]):
                        go()
            throughput = []
            for n in args.concurrency:
                over_http = concurrent(lambda i: http_session(url, image_png, clicks(100 + i, args.clicks)), n)
                in_process = concurrent(lambda i: local_session(model, image, clicks(100 + i, args.clicks)), n)
                throughput.append({"sessions": n, "http": over_http, "in_process": in_process})
            ready = httpx.get(url + "/readyz").json()
        finally:
            server.stop()

    local, remote = stats(local_ms), stats(http_ms)
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "ivos": ivos.__version__, "backend": model.backend, "server_backend": ready["model"],
           "threads": args.threads, "request_threads": args.request_threads, "image": f"{SIZE[0]}x{SIZE[1]}",
           "loadavg_at_end": os.getloadavg()}
    floor = stats(floor_ms)
    result = {"in_process": local, "http": remote, "request_floor": floor, "ratio_p50": remote["p50"] / local["p50"],
              "ratio_mean": remote["mean"] / local["mean"], "overhead_ms_p50": remote["p50"] - local["p50"],
              "throughput": throughput, "environment": env}
    command = "python -m ivos.bench.serve " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# ivos serve: HTTP overhead per click and clicks/s under concurrency", "",
        "Command (one run; in-process and HTTP sides alternate within it, so the ratios are the figures):", "",
        f"    {command.strip()}", "",
        f"Bundle {args.model} ({model.backend}, shipped defaults: CRF and flip as in the bundle), "
        f"{SIZE[0]}x{SIZE[1]} image (the demo clip's first frame, resized), {args.threads} engine thread(s) "
        f"on both sides, server with {args.request_threads} request threads, loopback, no API key. "
        f"Machine: {env['platform']}, {env['cpus']} CPUs, load average at the end {env['loadavg_at_end'][0]:.2f} "
        "(a shared machine: absolute times are loaded, compare within the run).", "",
        "## One session: the same clicks in-process and over HTTP", "",
        "| side | clicks | p50 (ms) | p90 | p99 | mean |", "|---|---|---|---|---|---|",
        *(f"| {name} | {s['n']} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['mean']:.1f} |"
          for name, s in (("in-process ImagePredictor.add_click", local), ("HTTP POST .../clicks", remote))),
        "",
        f"HTTP / in-process: **{result['ratio_p50']:.2f}x** at p50 ({result['overhead_ms_p50']:+.1f} ms per click), "
        f"{result['ratio_mean']:.2f}x on the mean. The request path alone (``POST .../undo`` on a session "
        f"without clicks: routing, store lookup, thread hop, JSON; no network run) takes p50 {floor['p50']:.1f} ms "
        f"(p90 {floor['p90']:.1f}, p99 {floor['p99']:.1f}) over {floor['n']} requests.", "",
        "## Concurrent sessions", "",
        "| sessions | clicks | HTTP clicks/s | HTTP p50 / p99 (ms) | in-process clicks/s | in-process p50 / p99 (ms) |",
        "|---|---|---|---|---|---|",
        *(f"| {t['sessions']} | {t['http']['clicks']} | {t['http']['clicks_per_s']:.1f} | "
          f"{t['http']['p50']:.1f} / {t['http']['p99']:.1f} | {t['in_process']['clicks_per_s']:.1f} | "
          f"{t['in_process']['p50']:.1f} / {t['in_process']['p99']:.1f} |" for t in throughput),
        "",
        f"Environment: `{json.dumps(env)}`", "",
    ]
    write_report(markdown=(args.out, "\n".join(lines)), json_data=(args.out.with_suffix(".json"), result))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
