"""Bad requests, one table: each gives its documented status, error code and a message naming
what was wrong (and the limit's flag), and the server keeps serving with nothing lost: a session
made before the table still answers with its clicks afterwards. The app runs in process
(``httpx.ASGITransport``; the body limit sees the chunks as a server passes them on)."""
from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest

from ivos.serve.testing import in_process

pytestmark = pytest.mark.anyio

KEY, OTHER = "k" * 20 + "-first", "o" * 20 + "-other"
LIMITS = dict(max_image_pixels=1_000_000, max_upload_bytes=1 << 20, max_frames=4, max_duration_s=1.0,
              api_keys=(KEY, OTHER), job_workers=1, job_queue=0, finetune_steps=2000)
"""``ivos serve --max-image-pixels 1000000 --max-upload-mb 1 --max-frames 4 --max-duration-s 1
--api-key KEY --api-key OTHER --job-workers 1 --job-queue 0 --finetune-steps 2000``."""


def png(h, w, fmt="PNG"):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
async def limited(tmp_path_factory, config_for, module_store_url):
    config = config_for(tmp_path_factory.mktemp("bad") / "data", store=module_store_url, **LIMITS)
    async with in_process(config, api_key=KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(limited):
    return limited.http


@pytest.fixture(scope="module")
async def session(http):
    """An image session made before the table, with one click: it must survive every row."""
    r = await http.post("/v1/images", files={"image": ("a.png", png(40, 50), "image/png")})
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    r = await http.post(f"/v1/images/{sid}/clicks", json={"x": 10, "y": 10, "positive": True})
    assert r.status_code == 200
    return sid


async def chunked_upload():
    """A multipart body sent chunked (no Content-Length): a 2.5 MB file part, never closed."""
    yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    for _ in range(40):
        yield b"0" * 65536


def frames_files(n, h=16, w=16):
    return [("frames", (f"{i}.png", png(h, w), "image/png")) for i in range(n)]


def truncated_mp4():
    av = pytest.importorskip("av")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=2)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buf.getvalue()
    return data[: len(data) // 2]


# (name, request(http, sid) -> response, status, code, words the message must hold)
ROWS = [
    ("garbage image", lambda h, s: h.post("/v1/images", files={"image": ("a.png", b"\x00garbage" * 50)}),
     400, "not_an_image", ["not an image"]),
    ("empty image", lambda h, s: h.post("/v1/images", files={"image": ("a.png", b"")}), 400, "empty_upload",
     ["empty"]),
    ("truncated png", lambda h, s: h.post("/v1/images", files={"image": ("a.png", png(60, 60)[:120])}), 400,
     "corrupt_image", ["truncated or corrupt"]),
    ("jpeg named .png", lambda h, s: h.post("/v1/images", files={"image": ("a.png", png(20, 20, "JPEG"))}), 201,
     None, []),
    ("unsupported format", lambda h, s: h.post("/v1/images", files={"image": ("a.ico", png(16, 16, "ICO"))}), 415,
     "unsupported_image_format", ["ICO"]),
    ("too many pixels", lambda h, s: h.post("/v1/images", files={"image": ("a.png", png(1001, 1000))}), 413,
     "limit_exceeded", ["1,001,000 pixels", "--max-image-pixels"]),
    ("body over the upload limit", lambda h, s: h.post("/v1/images", files={"image": ("a.png", b"0" * (2 << 20))}),
     413, "limit_exceeded", ["1,048,576 bytes", "--max-upload-mb"]),
    ("chunked body over the limit", lambda h, s: h.post("/v1/images", content=chunked_upload(),
                                                        headers={"content-type": "multipart/form-data; boundary=x"}),
     413, "limit_exceeded", ["--max-upload-mb"]),
    ("too many frames", lambda h, s: h.post("/v1/videos", files=frames_files(5)), 413, "limit_exceeded",
     ["5 frames", "--max-frames"]),
    ("video too long", lambda h, s: h.post("/v1/videos", files=frames_files(3), data={"fps": "2"}), 413,
     "limit_exceeded", ["1.5 s", "--max-duration-s"]),
    ("frames of two sizes", lambda h, s: h.post("/v1/videos", files=frames_files(2) + [
        ("frames", ("x.png", png(8, 8), "image/png"))]), 400, "frame_size_mismatch", ["frame 2"]),
    ("garbage video", lambda h, s: h.post("/v1/videos", files={"video": ("a.mp4", b"\x00\x01" * 500)}), 400,
     "not_a_video", ["cannot be read as a video"]),
    ("truncated video", lambda h, s: h.post("/v1/videos", files={"video": ("a.mp4", truncated_mp4())}), 400, None,
     ["video"]),
    ("video and frames", lambda h, s: h.post("/v1/videos", files=[("video", ("a.mp4", b"x"))] + frames_files(1)),
     422, "invalid_request", ["exactly one"]),
    ("malformed JSON", lambda h, s: h.post(f"/v1/images/{s}/clicks", content=b"{x: 1",
                                           headers={"content-type": "application/json"}), 422, "invalid_request",
     ["JSON"]),
    ("missing field", lambda h, s: h.post(f"/v1/images/{s}/clicks", json={"x": 1}), 422, "invalid_request",
     ["body.y"]),
    ("string coordinate", lambda h, s: h.post(f"/v1/images/{s}/clicks", json={"x": "1", "y": 2}), 422,
     "invalid_request", ["body.x"]),
    ("positive 'no'", lambda h, s: h.post(f"/v1/images/{s}/clicks", json={"x": 1, "y": 2, "positive": "no"}), 422,
     "invalid_request", ["body.positive"]),
    ("positive 2", lambda h, s: h.post(f"/v1/images/{s}/clicks", json={"x": 1, "y": 2, "positive": 2}), 422,
     "invalid_input", ["positive must be true/false"]),
    ("click outside", lambda h, s: h.post(f"/v1/images/{s}/clicks", json={"x": 50, "y": 2}), 422, "invalid_input",
     ["0 <= x < 50"]),
    ("mask of another size", lambda h, s: h.post(f"/v1/images/{s}/predict", json={
        "points": [[1, 1]], "labels": [1], "mask_input": {"rle": {"size": [3, 3], "counts": [9]}}}), 422,
     "invalid_mask", ["[40, 50]"]),
    ("mask not base64", lambda h, s: h.post(f"/v1/images/{s}/predict", json={
        "points": [[1, 1]], "labels": [1], "mask_input": {"png": "%%%"}}), 422, "invalid_mask", ["base64"]),
    ("label 0.7", lambda h, s: h.post(f"/v1/images/{s}/predict", json={"points": [[1, 1]], "labels": [0.7]}), 422,
     "invalid_request", ["labels"]),
    ("bad mask_format", lambda h, s: h.post(f"/v1/images/{s}/clicks?mask_format=gif", json={"x": 1, "y": 2}), 422,
     "invalid_request", ["mask_format"]),
    ("unknown session", lambda h, s: h.get("/v1/images/img_" + "A" * 24), 404, "image_session_not_found",
     ["img_AAAA"]),
    ("path tricks", lambda h, s: h.get("/v1/images/..%2F..%2Fsessions.sqlite3"), 404, None, []),
    ("image id on the video routes", lambda h, s: h.get(f"/v1/videos/{s}"), 404, "video_session_not_found", []),
    ("foreign session", lambda h, s: h.get(f"/v1/images/{s}", headers={"Authorization": f"Bearer {OTHER}"}), 404,
     "image_session_not_found", ["another key"]),
    ("missing key", lambda h, s: h.get(f"/v1/images/{s}", headers={"Authorization": ""}), 401, "missing_api_key",
     ["Bearer"]),
    ("wrong key", lambda h, s: h.get(f"/v1/images/{s}", headers={"Authorization": "Bearer " + "z" * 30}), 401,
     "invalid_api_key", ["not valid"]),
    ("metrics without key", lambda h, s: h.get("/metrics", headers={"Authorization": ""}), 401, "missing_api_key",
     []),
    ("unknown route", lambda h, s: h.get("/v1/nothing"), 404, "not_found", []),
    ("export format", lambda h, s: h.get("/v1/videos/vid_" + "B" * 24 + "/export?format=gif"), 404, None, []),
]


ABSOLUTE_PATH = re.compile(r"(?<![\w.:])/(?:[\w.-]+/)+[\w.-]*")
"""A POSIX absolute path of two or more parts (``/tmp/x/uploads/a.mp4``); URLs and API
routes (``/v1/images``) are told apart by the checks below."""


@pytest.mark.parametrize("name, call, status, code, words", ROWS, ids=[r[0] for r in ROWS])
async def test_bad_request(http, session, limited, name, call, status, code, words):
    r = await call(http, session)
    assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
    if status >= 400:
        # no server path reaches a client: not the data folder, not any absolute file path
        assert str(limited.data_dir) not in r.text and str(limited.data_dir.resolve()) not in r.text, r.text
        leaked = [p for p in ABSOLUTE_PATH.findall(r.json()["error"]["message"]) if not p.startswith("/v1/")]
        assert not leaked, (name, leaked, r.text)
        err = r.json()["error"]
        if code is not None:
            assert err["code"] == code, err
        for w in words:
            assert w in err["message"], (w, err["message"])
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


async def test_jobs_busy_and_queue_full(http):
    """A second job on a busy session is 409; a job when the job pool is full is 429 with
    Retry-After (--job-workers 1 --job-queue 0); cancel frees both."""
    ids = []
    for _ in range(2):
        r = await http.post("/v1/videos", files=frames_files(3, 24, 24), data={"fps": "4"})
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        await http.post(f"/v1/videos/{sid}/points", json={"frame_idx": 0, "points": [[5, 5]], "labels": [1]})
        ids.append(sid)
    first = await http.post(f"/v1/videos/{ids[0]}/propagate", json={})
    assert first.status_code == 202
    r = await http.post(f"/v1/videos/{ids[0]}/propagate", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "session_busy"
    r = await http.post(f"/v1/videos/{ids[1]}/propagate", json={})
    assert r.status_code == 429 and r.json()["error"]["code"] == "queue_full"
    assert int(r.headers["retry-after"]) >= 1
    r = await http.post(f"/v1/videos/{ids[0]}/propagate", json={"start_frame_idx": 7})
    assert r.status_code in (409, 422)
    await http.post(f"/v1/videos/{ids[0]}/jobs/{first.json()['job_id']}/cancel")


async def test_server_survived_everything(http, session):
    assert (await http.get("/readyz")).status_code == 200
    state = (await http.get(f"/v1/images/{session}")).json()
    assert [(c["x"], c["y"]) for c in state["clicks"]] == [(10, 10)]
    r = await http.post(f"/v1/images/{session}/clicks", json={"x": 20, "y": 20, "positive": True})
    assert r.status_code == 200 and r.json()["clicks"] == 2


def test_binding_beyond_loopback_needs_keys(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ivos.serve.cli", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "API keys are required" in r.stderr and "--api-key" in r.stderr
    r = subprocess.run([sys.executable, "-m", "ivos.serve.cli", "--api-key", "short", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "at least 16 characters" in r.stderr


async def test_each_key_lists_only_its_sessions(http, session):
    mine = [s["session_id"] for s in (await http.get("/v1/sessions")).json()["sessions"]]
    assert session in mine
    theirs = (await http.get("/v1/sessions", headers={"Authorization": f"Bearer {OTHER}"})).json()["sessions"]
    assert session not in [s["session_id"] for s in theirs]
    r = await http.get("/v1/sessions", params={"kind": "movie"})
    assert r.status_code == 422 and "kind" in r.json()["error"]["message"]
