"""Scale-out on Ray Serve: ``ivos serve --ray --replicas 2`` starts a local Ray instance with two
replicas sharing the store; a session created through one replica is continued through the
other (every response names its replica: ``X-Ivos-Instance``), with the masks the same clicks
give in-process."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'ivos[ray]')")

STARTUP_S = 240


def scene(h=48, w=64):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    image[12:36, 16:44] = (220, 140, 30)
    return image


def test_two_replicas_share_sessions(tmp_path, bundles, png_bytes, server_class):
    import httpx

    import ivos
    from ivos.serve.testing import stop_process_group

    port = server_class(tmp_path, bundles).port  # a free port
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "ray.log"
    cmd = [sys.executable, "-m", "ivos.serve.cli", "--ray", "--replicas", "2", "--ray-cpus", "0.5", "--port",
           str(port), "--data-dir", str(tmp_path / "data"), "--model", str(bundles["click"]), "--osvos-model",
           str(bundles["osvos"]), "--threads", "1", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        deadline, ready = time.monotonic() + STARTUP_S, set()
        while time.monotonic() < deadline and len(ready) < 2:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                r = httpx.get(url + "/readyz", timeout=5)
                if r.status_code == 200:
                    ready.add(r.headers["x-ivos-instance"])
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert len(ready) == 2, f"replicas ready: {ready}\n{log.read_text()[-3000:]}"

        local = ivos.ImagePredictor(ivos.load(bundles["click"], backend="ort", threads=1))
        image = scene()
        local.set_image(image)
        rng = np.random.default_rng(0)
        served_by = []
        with httpx.Client(base_url=url, timeout=60) as http:
            r = http.post("/v1/images", files={"image": ("a.png", png_bytes(image), "image/png")})
            assert r.status_code == 201, r.text
            sid, creator = r.json()["session_id"], r.headers["x-ivos-instance"]
            from ivos.formats.rle import rle_decode

            for n in range(1, 41):
                x, y, p = float(rng.uniform(0, 64)), float(rng.uniform(0, 48)), bool(rng.random() < 0.6)
                r = http.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y, "positive": p})
                assert r.status_code == 200, r.text
                assert r.json()["clicks"] == n
                np.testing.assert_array_equal(rle_decode(r.json()["mask"]["rle"]), local.add_click(x, y, p).mask)
                served_by.append(r.headers["x-ivos-instance"])
                if n >= 6 and len(set(served_by)) == 2 and served_by[-1] != served_by[-2]:
                    break
            assert set(served_by) == ready and creator in ready  # both replicas worked on the one session
            undone = http.post(f"/v1/images/{sid}/undo")
            np.testing.assert_array_equal(rle_decode(undone.json()["mask"]["rle"]), local.undo().mask)
    finally:
        stop_process_group(proc)
