"""``ivos serve --workers 2``: two uvicorn worker processes on one store; one session's clicks
land on both (``X-Ivos-Instance``) and continue each other's work, with the in-process masks."""
from __future__ import annotations

import time

import httpx
import numpy as np


def test_two_workers_share_a_session(make_server, bundles, png_bytes):
    import ivos
    from ivos.formats.rle import rle_decode

    server = make_server("--workers", "2")
    rng = np.random.default_rng(3)
    image = rng.integers(0, 80, (40, 60, 3), dtype=np.uint8)
    image[10:30, 15:45] = (200, 200, 40)
    local = ivos.ImagePredictor(ivos.load(bundles["click"], backend="ort", threads=1))
    local.set_image(image)
    ready, deadline = set(), time.monotonic() + 60
    while len(ready) < 2 and time.monotonic() < deadline:  # both workers loaded (not only the first)
        r = httpx.get(server.url + "/readyz", timeout=10)
        if r.status_code == 200:
            ready.add(r.headers["x-ivos-instance"])
    assert len(ready) == 2, ready
    seen = []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        sid = http.post("/v1/images", files={"image": ("a.png", png_bytes(image), "image/png")}).json()["session_id"]
        for n in range(1, 61):
            x, y, p = float(rng.uniform(0, 60)), float(rng.uniform(0, 40)), bool(rng.random() < 0.6)
            # a new connection per click: the kernel spreads connections over the workers
            with httpx.Client(base_url=server.url, timeout=60) as one:
                r = one.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y, "positive": p})
            assert r.status_code == 200 and r.json()["clicks"] == n, r.text
            np.testing.assert_array_equal(rle_decode(r.json()["mask"]["rle"]), local.add_click(x, y, p).mask)
            seen.append(r.headers["x-ivos-instance"])
            if n >= 6 and len(set(seen)) == 2 and seen[-1] != seen[-2]:
                break
        assert len(set(seen)) == 2, f"one worker took all {len(seen)} clicks"
