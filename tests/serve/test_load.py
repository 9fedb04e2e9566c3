"""A bounded load test on loopback: 16 image sessions clicking at once, 20 clicks each, over
real HTTP. Zero errors, zero cross-talk: every session's masks equal those of the same clicks
run in-process. Reports p50/p99 click latency (the numbers to quote come from
benchmarks/serve.py, run on a quiet machine)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

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


def test_16_sessions_x_20_clicks(make_server, bundles, png_bytes):
    import ivos
    from ivos.formats.rle import rle_decode

    server = make_server("--request-threads", "4")
    latencies: list[float] = []
    errors: list[str] = []

    def run(seed):
        image = scene(seed)
        masks = []
        with httpx.Client(base_url=server.url, timeout=60) as http:
            r = http.post("/v1/images", files={"image": ("a.png", png_bytes(image), "image/png")})
            if r.status_code != 201:
                errors.append(r.text)
                return image, masks
            sid = r.json()["session_id"]
            for x, y, p in clicks_for(seed):
                t0 = time.perf_counter()
                r = http.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y, "positive": p})
                latencies.append((time.perf_counter() - t0) * 1e3)
                if r.status_code != 200:
                    errors.append(r.text)
                    continue
                masks.append(rle_decode(r.json()["mask"]["rle"]))
        return image, masks

    t0 = time.perf_counter()
    with ThreadPoolExecutor(SESSIONS) as pool:
        runs = list(pool.map(run, range(SESSIONS)))
    wall = time.perf_counter() - t0
    assert time.perf_counter() - t0 < 300  # bounded in time as well as in count
    assert errors == []
    model = ivos.load(bundles["click"], backend="ort", threads=1)
    for seed, (image, masks) in enumerate(runs):
        local = ivos.ImagePredictor(model)
        local.set_image(image)
        assert len(masks) == CLICKS
        for (x, y, p), got in zip(clicks_for(seed), masks):
            np.testing.assert_array_equal(got, local.add_click(x, y, p).mask, err_msg=f"session {seed}")
    p50, p99 = np.percentile(latencies, [50, 99])
    print(f"{SESSIONS} sessions x {CLICKS} clicks: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"{len(latencies) / wall:.1f} clicks/s")
    assert len(latencies) == SESSIONS * CLICKS
