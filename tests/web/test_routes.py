"""The routes ``ivos serve`` added for the web editor (engine/serve/web.py), over plain HTTP:
the demo clip session, frames as JPEG, an image session's image, their errors."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

import ivos

DEMO = json.loads((Path(ivos.__file__).parent / "data" / "demo_clip.json").read_text())


def test_demo_session_and_its_frames(web_server):
    import httpx
    from PIL import Image

    with httpx.Client(base_url=web_server.url, timeout=60) as c:
        rec = c.post("/v1/videos/demo")
        assert rec.status_code == 201, rec.text
        body = rec.json()
        assert body["session_id"].startswith("vid_") and body["kind"] == "video"
        assert (body["num_frames"], body["width"], body["height"]) == (DEMO["frames"], DEMO["width"], DEMO["height"])
        assert body["demo"]["clicks"] == DEMO["clicks"] and body["demo"]["name"] == "demo_clip.mp4"
        sid = body["session_id"]
        for k in (0, DEMO["frames"] - 1):
            r = c.get(f"/v1/videos/{sid}/frames/{k}/image")
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            assert "immutable" in r.headers["cache-control"]
            got = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), np.int16)
            frames = ivos.open_video(Path(ivos.__file__).parent / "data" / "demo_clip.mp4", cache_size=1)
            want = np.asarray(frames[k], np.int16)
            frames.close()
            assert got.shape == want.shape and np.abs(got - want).mean() < 3.0  # JPEG quality 90
        for bad in (-1, DEMO["frames"]):
            r = c.get(f"/v1/videos/{sid}/frames/{bad}/image")
            assert r.status_code == 422 and "frame_idx" in r.json()["error"]["message"]
        assert c.get("/v1/videos/vid_unknownunknownunknown/frames/0/image").status_code == 404
        # two demo sessions are two sessions
        assert c.post("/v1/videos/demo").json()["session_id"] != sid


def test_image_session_image_is_the_stored_upload(web_server, tmp_path):
    import httpx

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    with httpx.Client(base_url=web_server.url, timeout=60) as c:
        sid = c.post("/v1/images", files={"image": ("x.png", buf.getvalue(), "image/png")}).json()["session_id"]
        r = c.get(f"/v1/images/{sid}/image")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")), image)
        assert c.get("/v1/images/img_unknownunknownunknown/image").status_code == 404


def test_demo_route_needs_the_key_when_the_server_has_keys(osvos_tiny, tmp_path):
    """The editor's /v1 routes check the key like every other; the page itself does not."""
    import httpx

    from ivos.serve.testing import ServerProcess

    key, path = "k" * 24, "/v1/videos/demo"
    server = ServerProcess(tmp_path / "data", ["--model", "ivos-lite0", "--osvos-model", str(osvos_tiny),
                                               "--threads", "1", "--api-key", key]).start()
    url = server.url
    try:
        assert httpx.post(url + path, timeout=60).status_code == 401
        assert httpx.post(url + path, headers={"Authorization": f"Bearer {key}"}, timeout=60).status_code == 201
        assert httpx.get(url + "/", timeout=30).status_code == 200
        assert httpx.get(url + "/web/editor.js", timeout=30).status_code == 200
    finally:
        server.stop()
