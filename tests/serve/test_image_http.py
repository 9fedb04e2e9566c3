"""Image sessions through real HTTP: upload, clicks, undo, reset, predict from a mask, replace
the image, delete; masks equal to the same clicks run in-process; the OpenAPI docs, health,
readiness and metrics endpoints."""
from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image


def scene(h=48, w=64, seed=1):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    image[12:36, 16:44] = (220, 140, 30)
    return image


def rle_mask(obj: dict) -> np.ndarray:
    from ivos.formats.rle import rle_decode

    return rle_decode(obj["rle"])


@pytest.fixture(scope="module")
def in_process(bundles):
    import ivos

    return ivos.ImagePredictor(ivos.load(bundles["click"], backend="ort", threads=1))


def test_image_session_end_to_end(shared_server, in_process, png_bytes):
    url = shared_server.url
    image = scene()
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post("/v1/images", files={"image": ("x.png", png_bytes(image), "image/png")})
        assert r.status_code == 201, r.text
        session = r.json()
        sid = session["session_id"]
        assert (session["width"], session["height"]) == (64, 48)
        assert len(sid) >= 24  # 144 random bits

        in_process.set_image(image)
        clicks = [(30, 24, True), (5, 5, False), (40.5, 30.25, True)]
        for n, (x, y, positive) in enumerate(clicks, 1):
            r = http.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y, "positive": positive},
                          params={"mask_format": "rle,png"})
            assert r.status_code == 200, r.text
            body = r.json()
            expected = in_process.add_click(x, y, positive)
            assert body["clicks"] == n
            np.testing.assert_array_equal(rle_mask(body["mask"]), expected.mask)
            png = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask"]["png"]))))
            np.testing.assert_array_equal(png > 0, expected.mask.astype(bool))
            assert body["mask"]["area"] == int(expected.mask.sum())
            assert set(body["timings"]) == {"prepare_ms", "render_ms", "infer_ms", "post_ms", "crf_ms", "total_ms"}

        r = http.post(f"/v1/images/{sid}/undo")
        expected = in_process.undo()
        assert r.json()["clicks"] == 2
        np.testing.assert_array_equal(rle_mask(r.json()["mask"]), expected.mask)

        state = http.get(f"/v1/images/{sid}").json()
        assert [(c["x"], c["y"], c["positive"]) for c in state["clicks"]] == [(30, 24, True), (5, 5, False)]
        np.testing.assert_array_equal(rle_mask(state["mask"]), expected.mask)

        # stateless predict from a mask the client sends: the history is untouched
        prior = np.zeros((48, 64), np.uint8)
        prior[10:30, 10:40] = 1
        from ivos.formats.rle import rle_encode

        r = http.post(f"/v1/images/{sid}/predict", json={"points": [[20, 20]], "labels": [1],
                                                          "mask_input": {"rle": rle_encode(prior)}},
                      params={"probabilities": "true"})
        assert r.status_code == 200, r.text
        expected = in_process.predict(np.array([[20, 20]]), np.array([1]), mask_input=prior)
        np.testing.assert_array_equal(rle_mask(r.json()["mask"]), expected.mask)
        prob = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["probabilities_png"]))))
        assert np.abs(prob / 255.0 - expected.probabilities).max() <= 0.5 / 255 + 1e-6
        assert len(http.get(f"/v1/images/{sid}").json()["clicks"]) == 2

        r = http.post(f"/v1/images/{sid}/reset")
        assert r.json() == {"clicks": 0}
        assert http.post(f"/v1/images/{sid}/undo").json() == {"clicks": 0, "mask": None}

        # set_image on the same session: a new size, clicks forgotten
        other = scene(30, 50, seed=2)
        r = http.put(f"/v1/images/{sid}/image", files={"image": ("y.jpg", png_bytes(other, "JPEG"), "image/jpeg")})
        assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == (50, 30)
        r = http.post(f"/v1/images/{sid}/clicks", json={"x": 49.5, "y": 29, "positive": 1})
        assert r.status_code == 200 and rle_mask(r.json()["mask"]).shape == (30, 50)

        assert http.delete(f"/v1/images/{sid}").status_code == 204
        assert http.get(f"/v1/images/{sid}").status_code == 404


def test_service_endpoints(shared_server):
    with httpx.Client(base_url=shared_server.url, timeout=30) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz").json()
        assert ready["status"] == "ready" and ready["model"].startswith("onnxruntime")
        schema = http.get("/openapi.json").json()
        assert "/v1/images/{session_id}/clicks" in schema["paths"]
        assert "/v1/videos/{session_id}/propagate" in schema["paths"]
        assert http.get("/docs").status_code == 200
        text = http.get("/metrics").text
        assert "ivos_http_requests_total" in text and "ivos_click_stage_ms_bucket" in text
        assert 'ivos_queue_depth{pool="jobs"}' in text and 'ivos_sessions{kind="image"}' in text
        assert 'route="/v1/images/{session_id}/clicks"' in text  # templates, not raw paths


def test_idle_sessions_expire_with_their_files(make_server, png_bytes):
    """--session-ttl-h: a session unchanged for longer is deleted with its files; one that
    keeps being used stays."""
    import time

    server = make_server("--session-ttl-h", str(2.0 / 3600))  # 2 s
    with httpx.Client(base_url=server.url, timeout=30) as http:
        idle = http.post("/v1/images", files={"image": ("a.png", png_bytes(scene()), "image/png")}).json()
        busy = http.post("/v1/images", files={"image": ("a.png", png_bytes(scene()), "image/png")}).json()
        folder = server.data_dir / "sessions" / idle["session_id"]
        assert folder.is_dir()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # clicks keep the second one alive
            assert http.post(f"/v1/images/{busy['session_id']}/clicks", json={"x": 5, "y": 5}).status_code == 200
            time.sleep(0.5)
        assert http.get(f"/v1/images/{idle['session_id']}").status_code == 404
        assert not folder.exists()
        assert http.get(f"/v1/images/{busy['session_id']}").status_code == 200
        assert [s["session_id"] for s in http.get("/v1/sessions").json()["sessions"]] == [busy["session_id"]]
