"""A bounded load test: 16 image sessions clicking at once, 20 clicks each, through the app (in
process: 16 concurrent clients on one event loop, the clicks on the server's request pool).
Zero errors, zero cross-talk: every session's masks equal those of the same clicks run
in-process. Reports p50/p99 click latency (the numbers to quote come from benchmarks/serve.py:
a real server over loopback HTTP, on a quiet machine)."""
from __future__ import annotations

import time

import anyio
import numpy as np
import pytest

from ivos.serve.testing import in_process

SESSIONS, CLICKS = 16, 20


def scene(seed, h=96, w=128):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 70, (h, w, 3), dtype=np.uint8)
    y, x = rng.integers(10, h - 40), rng.integers(10, w - 50)
    image[y:y + 30, x:x + 40] = rng.integers(120, 255, 3)
    return image


def clicks_for(seed, h=96, w=128):
    rng = np.random.default_rng(1000 + seed)
    return [(float(rng.uniform(0, w)), float(rng.uniform(0, h)), bool(rng.random() < 0.7)) for _ in range(CLICKS)]


@pytest.mark.anyio
async def test_16_sessions_x_20_clicks(serve_config, bundles, png_bytes):
    import ivos
    from ivos.formats.rle import rle_decode

    latencies: list[float] = []
    errors: list[str] = []
    runs: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}

    async def run(http, seed):
        image = scene(seed)
        masks: list[np.ndarray] = []
        runs[seed] = image, masks
        r = await http.post("/v1/images", files={"image": ("a.png", png_bytes(image), "image/png")})
        if r.status_code != 201:
            errors.append(r.text)
            return
        sid = r.json()["session_id"]
        for x, y, p in clicks_for(seed):
            t0 = time.perf_counter()
            r = await http.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y, "positive": p})
            latencies.append((time.perf_counter() - t0) * 1e3)
            if r.status_code != 200:
                errors.append(r.text)
                continue
            masks.append(rle_decode(r.json()["mask"]["rle"]))

    async with in_process(serve_config(request_threads=4)) as srv:
        t0 = time.perf_counter()
        with anyio.fail_after(300):  # bounded in time as well as in count
            async with anyio.create_task_group() as tg:
                for seed in range(SESSIONS):
                    tg.start_soon(run, srv.http, seed)
        wall = time.perf_counter() - t0
    assert errors == []
    model = ivos.load(bundles["click"], backend="ort", threads=1)
    for seed, (image, masks) in sorted(runs.items()):
        local = ivos.ImagePredictor(model)
        local.set_image(image)
        assert len(masks) == CLICKS
        for (x, y, p), got in zip(clicks_for(seed), masks):
            np.testing.assert_array_equal(got, local.add_click(x, y, p).mask, err_msg=f"session {seed}")
    p50, p99 = np.percentile(latencies, [50, 99])
    print(f"{SESSIONS} sessions x {CLICKS} clicks: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"{len(latencies) / wall:.1f} clicks/s")
    assert len(latencies) == SESSIONS * CLICKS
