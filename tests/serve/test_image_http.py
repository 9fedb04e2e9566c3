"""Image sessions through the app (in process, ``httpx.ASGITransport``): upload, clicks, undo,
reset, predict from a mask, replace the image, delete; masks equal to the same clicks run
in-process; the OpenAPI docs, health, readiness and metrics endpoints; idle sessions expire."""
from __future__ import annotations

import base64
import io
import time

import anyio
import numpy as np
import pytest
from PIL import Image

from ivos.serve.testing import in_process

pytestmark = pytest.mark.anyio


def scene(h=48, w=64, seed=1):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    image[12:36, 16:44] = (220, 140, 30)
    return image


def rle_mask(obj: dict) -> np.ndarray:
    from ivos.formats.rle import rle_decode

    return rle_decode(obj["rle"])


@pytest.fixture(scope="module")
def local(bundles):
    import ivos

    return ivos.ImagePredictor(ivos.load(bundles["click"], backend="ort", threads=1))


async def test_image_session_end_to_end(serve_config, local, png_bytes):
    image = scene()
    async with in_process(serve_config()) as srv:
        http = srv.http
        r = await http.post("/v1/images", files={"image": ("x.png", png_bytes(image), "image/png")})
        assert r.status_code == 201, r.text
        session = r.json()
        sid = session["session_id"]
        assert (session["width"], session["height"]) == (64, 48)
        assert len(sid) >= 24  # 144 random bits
        assert "num_frames" not in session  # video sessions only

        local.set_image(image)
        clicks = [(30, 24, True), (5, 5, False), (40.5, 30.25, True)]
        for n, (x, y, positive) in enumerate(clicks, 1):
            r = await http.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y, "positive": positive},
                                params={"mask_format": "rle,png"})
            assert r.status_code == 200, r.text
            body = r.json()
            expected = local.add_click(x, y, positive)
            assert body["clicks"] == n
            np.testing.assert_array_equal(rle_mask(body["mask"]), expected.mask)
            png = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask"]["png"]))))
            np.testing.assert_array_equal(png > 0, expected.mask.astype(bool))
            assert body["mask"]["area"] == int(expected.mask.sum())
            assert set(body["timings"]) == {"prepare_ms", "render_ms", "infer_ms", "post_ms", "crf_ms", "total_ms"}
            assert "probabilities_png" not in body

        r = await http.post(f"/v1/images/{sid}/undo")
        expected = local.undo()
        assert r.json()["clicks"] == 2
        assert set(r.json()["mask"]) == {"rle", "area", "bbox"}  # only the formats asked for
        np.testing.assert_array_equal(rle_mask(r.json()["mask"]), expected.mask)

        state = (await http.get(f"/v1/images/{sid}")).json()
        assert [(c["x"], c["y"], c["positive"]) for c in state["clicks"]] == [(30, 24, True), (5, 5, False)]
        np.testing.assert_array_equal(rle_mask(state["mask"]), expected.mask)

        # stateless predict from a mask the client sends: the history is untouched
        prior = np.zeros((48, 64), np.uint8)
        prior[10:30, 10:40] = 1
        from ivos.formats.rle import rle_encode

        r = await http.post(f"/v1/images/{sid}/predict", json={"points": [[20, 20]], "labels": [1],
                                                                "mask_input": {"rle": rle_encode(prior)}},
                            params={"probabilities": "true"})
        assert r.status_code == 200, r.text
        assert "clicks" not in r.json()
        expected = local.predict(np.array([[20, 20]]), np.array([1]), mask_input=prior)
        np.testing.assert_array_equal(rle_mask(r.json()["mask"]), expected.mask)
        prob = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["probabilities_png"]))))
        assert np.abs(prob / 255.0 - expected.probabilities).max() <= 0.5 / 255 + 1e-6
        assert len((await http.get(f"/v1/images/{sid}")).json()["clicks"]) == 2

        r = await http.post(f"/v1/images/{sid}/reset")
        assert r.json() == {"clicks": 0}
        assert (await http.post(f"/v1/images/{sid}/undo")).json() == {"clicks": 0, "mask": None}

        # set_image on the same session: a new size, clicks forgotten
        other = scene(30, 50, seed=2)
        r = await http.put(f"/v1/images/{sid}/image",
                           files={"image": ("y.jpg", png_bytes(other, "JPEG"), "image/jpeg")})
        assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == (50, 30)
        r = await http.post(f"/v1/images/{sid}/clicks", json={"x": 49.5, "y": 29, "positive": 1})
        assert r.status_code == 200 and rle_mask(r.json()["mask"]).shape == (30, 50)

        assert (await http.delete(f"/v1/images/{sid}")).status_code == 204
        assert (await http.get(f"/v1/images/{sid}")).status_code == 404


async def test_service_endpoints(serve_config, png_bytes):
    async with in_process(serve_config()) as srv:
        http = srv.http
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = (await http.get("/readyz")).json()
        assert ready["status"] == "ready" and ready["model"].startswith("onnxruntime")
        assert (await http.get("/readyz")).headers["x-ivos-instance"] == ready["instance"]
        schema = (await http.get("/openapi.json")).json()
        assert "/v1/images/{session_id}/clicks" in schema["paths"]
        assert "/v1/videos/{session_id}/propagate" in schema["paths"]
        assert (await http.get("/docs")).status_code == 200
        sid = (await http.post("/v1/images", files={"image": ("a.png", png_bytes(scene()), "image/png")})
               ).json()["session_id"]
        assert (await http.post(f"/v1/images/{sid}/clicks", json={"x": 5, "y": 5})).status_code == 200
        r = await http.get("/metrics")
        assert r.headers["content-type"].startswith("text/plain")
        text = r.text
        assert "ivos_http_requests_total" in text and "ivos_click_stage_ms_bucket" in text
        assert 'ivos_queue_depth{pool="jobs"}' in text and 'ivos_sessions{kind="image"} 1.0' in text
        assert 'route="/v1/images/{session_id}/clicks"' in text  # templates, not raw paths


async def test_idle_sessions_expire_with_their_files(serve_config, png_bytes):
    """--session-ttl-h: a session unchanged for longer is deleted with its files; one that
    keeps being used stays."""
    async with in_process(serve_config(session_ttl_h=2.0 / 3600)) as srv:  # 2 s
        http = srv.http
        files = {"image": ("a.png", png_bytes(scene()), "image/png")}
        idle = (await http.post("/v1/images", files=files)).json()
        busy = (await http.post("/v1/images", files=files)).json()
        blobs = srv.app.state.service.blobs  # files under the data dir, or in the PostgreSQL store
        prefix = f"sessions/{idle['session_id']}"
        folder = blobs.path(prefix)  # the files (SQLite) or their local copies (PostgreSQL)
        assert folder.is_dir() and blobs.list(prefix + "/")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # clicks keep the second one alive
            r = await http.post(f"/v1/images/{busy['session_id']}/clicks", json={"x": 5, "y": 5})
            assert r.status_code == 200
            await anyio.sleep(0.5)
        assert (await http.get(f"/v1/images/{idle['session_id']}")).status_code == 404
        assert not folder.exists() and not blobs.list(prefix + "/")
        assert (await http.get(f"/v1/images/{busy['session_id']}")).status_code == 200
        listed = (await http.get("/v1/sessions")).json()["sessions"]
        assert [s["session_id"] for s in listed] == [busy["session_id"]]
