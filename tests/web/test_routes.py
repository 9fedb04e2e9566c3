"""The routes ``ivos serve`` added for the web editor (``ivos.serve.routes.web``), through the
app in process (``httpx.ASGITransport``): the page and its files, the demo clip session, frames
as JPEG, an image session's image, their errors and their key checks."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

import ivos
from ivos.serve.testing import in_process

pytestmark = pytest.mark.anyio

DEMO = json.loads((Path(ivos.__file__).parent / "data" / "demo_clip.json").read_text())


async def test_demo_session_and_its_frames(web_config):
    from PIL import Image

    async with in_process(web_config()) as srv:
        c = srv.http
        rec = await c.post("/v1/videos/demo")
        assert rec.status_code == 201, rec.text
        body = rec.json()
        assert body["session_id"].startswith("vid_") and body["kind"] == "video"
        assert (body["num_frames"], body["width"], body["height"]) == (DEMO["frames"], DEMO["width"], DEMO["height"])
        assert body["demo"]["clicks"] == DEMO["clicks"] and body["demo"]["name"] == "demo_clip.mp4"
        sid = body["session_id"]
        for k in (0, DEMO["frames"] - 1):
            r = await c.get(f"/v1/videos/{sid}/frames/{k}/image")
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            assert "immutable" in r.headers["cache-control"]
            got = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), np.int16)
            frames = ivos.open_video(Path(ivos.__file__).parent / "data" / "demo_clip.mp4", cache_size=1)
            want = np.asarray(frames[k], np.int16)
            frames.close()
            assert got.shape == want.shape and np.abs(got - want).mean() < 3.0  # JPEG quality 90
        for bad in (-1, DEMO["frames"]):
            r = await c.get(f"/v1/videos/{sid}/frames/{bad}/image")
            assert r.status_code == 422 and "frame_idx" in r.json()["error"]["message"]
        assert (await c.get("/v1/videos/vid_unknownunknownunknown/frames/0/image")).status_code == 404
        # two demo sessions are two sessions
        assert (await c.post("/v1/videos/demo")).json()["session_id"] != sid


async def test_image_session_image_is_the_stored_upload(web_config):
    from PIL import Image

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    async with in_process(web_config()) as srv:
        c = srv.http
        sid = (await c.post("/v1/images", files={"image": ("x.png", buf.getvalue(), "image/png")})).json()["session_id"]
        r = await c.get(f"/v1/images/{sid}/image")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")), image)
        assert (await c.get("/v1/images/img_unknownunknownunknown/image")).status_code == 404


async def test_demo_route_needs_the_key_when_the_server_has_keys(web_config):
    """The editor's /v1 routes check the key like every other; the page itself does not."""
    key, path = "k" * 24, "/v1/videos/demo"
    async with in_process(web_config(api_keys=(key,))) as srv:
        c = srv.http
        assert (await c.post(path)).status_code == 401
        assert (await c.post(path, headers={"Authorization": f"Bearer {key}"})).status_code == 201
        page = await c.get("/")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-cache" and "<html" in page.text
        script = await c.get("/web/editor.js")
        assert script.status_code == 200 and script.headers["cache-control"] == "no-cache"
