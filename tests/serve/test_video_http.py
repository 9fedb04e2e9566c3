"""Video sessions through the app (in process, ``httpx.ASGITransport``): frames and video-file
uploads, clicks and masks on any frame, propagation as a background job with progress streamed
as Server-Sent Events, masks per frame, refine, undo, suggest_frame, remove_object, exports that
decode, cancel, one job per session."""
from __future__ import annotations

import io
import json
import time
import zipfile

import anyio
import numpy as np
import pytest
from PIL import Image

from ivos.serve.testing import in_process

pytestmark = pytest.mark.anyio


def rle(obj):
    from ivos.formats.rle import rle_decode

    return rle_decode(obj["rle"])


async def upload_frames(http, frames, png_bytes, fps=None):
    files = [("frames", (f"{i}.png", png_bytes(f), "image/png")) for i, f in enumerate(frames)]
    r = await http.post("/v1/videos", files=files, data={} if fps is None else {"fps": str(fps)})
    assert r.status_code == 201, r.text
    return r.json()


async def sse_events(http, path):
    """(event, data) pairs of an event stream until it ends, parsed as the web editor does
    (engine/web/api.js: events are separated by a blank line, "\n\n")."""
    async with http.stream("GET", path) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = (await r.aread()).decode()
    assert "\r" not in text  # "\n" line ends
    events = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        event = next((line[len("event: "):] for line in lines if line.startswith("event: ")), None)
        data = [line[len("data: "):] for line in lines if line.startswith("data: ")]
        if data:
            events.append((event, json.loads("\n".join(data))))
    return events


async def wait_job(http, sid, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = (await http.get(f"/v1/videos/{sid}/jobs/{job_id}")).json()
        if job["status"] not in ("queued", "running"):
            return job
        await anyio.sleep(0.1)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


async def test_video_session_end_to_end(serve_config, make_clip, png_bytes):
    frames, gt = make_clip(n=6)
    async with in_process(serve_config()) as srv:
        http = srv.http
        session = await upload_frames(http, frames, png_bytes, fps=12)
        sid = session["session_id"]
        assert (session["num_frames"], session["width"], session["height"], session["fps"]) == (6, 56, 40, 12)

        r = await http.post(f"/v1/videos/{sid}/points", json={"frame_idx": 0, "obj_id": 1, "points": [[15, 17]],
                                                               "labels": [1]})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["source"] == "annotated" and first["frame_idx"] == 0 and first["obj_id"] == 1
        # a second object from a mask on another frame
        from ivos.formats.rle import rle_encode

        box = np.zeros((40, 56), np.uint8)
        box[30:38, 40:52] = 1
        r = await http.post(f"/v1/videos/{sid}/mask",
                            json={"frame_idx": 3, "obj_id": 2, "mask": {"rle": rle_encode(box)}})
        assert r.status_code == 200 and r.json()["mask"]["area"] == int(box.sum())

        r = await http.post(f"/v1/videos/{sid}/propagate", json={})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] == "queued" and job["total"] == 6
        events = await sse_events(http, f"/v1/videos/{sid}/jobs/{job['job_id']}/events")
        assert events[-1][0] == "end" and events[-1][1]["status"] == "done", events[-1]
        stages = [d["stage"] for _, d in events]
        assert any(s.startswith("finetune") for s in stages) or "propagate" in stages
        assert events[-1][1]["frames_done"] == 6

        info = (await http.get(f"/v1/videos/{sid}")).json()
        assert [o["obj_id"] for o in info["objects"]] == [1, 2]
        assert all(o["masked_frames"] == 6 and o["finetuned"] for o in info["objects"])
        assert info["objects"][0]["clicks"] == {"0": [[15.0, 17.0, 1]]}
        assert info["job"]["status"] == "done"

        everything = (await http.get(f"/v1/videos/{sid}/masks")).json()
        assert [f["frame_idx"] for f in everything["frames"]] == list(range(6))
        f3 = (await http.get(f"/v1/videos/{sid}/frames/3/masks", params={"mask_format": "rle,png"})).json()
        np.testing.assert_array_equal(rle(f3["masks"]["2"]), box)  # the annotation, exactly
        for k in ("1", "2"):  # no pixel in two objects
            assert rle(f3["masks"][k]).shape == (40, 56)
        assert not (rle(f3["masks"]["1"]) & rle(f3["masks"]["2"])).any()

        s = (await http.get(f"/v1/videos/{sid}/suggest")).json()
        assert s["frame_idx"] not in (0, 3) or s["obj_id"] in (1, 2)
        assert len(s["scores"]) == 6
        s1 = (await http.get(f"/v1/videos/{sid}/suggest", params={"obj_id": 1})).json()
        assert s1["obj_id"] == 1 and s1["frame_idx"] != 0
        assert s1["scores"][0] is None  # object 1 is annotated there: no score

        target = s1["frame_idx"]
        r = await http.post(f"/v1/videos/{sid}/refine", json={"frame_idx": target, "obj_id": 1,
                                                               "points": [[20, 18]], "labels": [1]})
        assert r.status_code == 200, r.text
        assert r.json()["source"] == "annotated"
        r = await http.post(f"/v1/videos/{sid}/undo", json={"frame_idx": target, "obj_id": 1})
        assert r.status_code == 200 and r.json()["result"]["source"] == "propagated"

        # exports decode
        r = await http.get(f"/v1/videos/{sid}/export", params={"format": "png-zip"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            names = sorted(zf.namelist())
            assert names == sorted(f"masks/{k}/{i:05d}.png" for k in (1, 2) for i in range(6))
            png = np.asarray(Image.open(io.BytesIO(zf.read("masks/2/00003.png"))))
            np.testing.assert_array_equal(png > 0, box.astype(bool))
        r = await http.get(f"/v1/videos/{sid}/export", params={"format": "coco"})
        coco = r.json()
        assert len(coco["images"]) == 6 and {a["track_id"] for a in coco["annotations"]} == {1, 2}
        from pycocotools import mask as mask_utils

        ann = next(a for a in coco["annotations"] if a["track_id"] == 2 and a["image_id"] == coco["images"][3]["id"])
        np.testing.assert_array_equal(mask_utils.decode(ann["segmentation"]), box)
        r = await http.get(f"/v1/videos/{sid}/export", params={"format": "rle"})
        assert len(r.json()["frames"]) == 6
        r = await http.get(f"/v1/videos/{sid}/export", params={"format": "sticker"})
        assert r.status_code == 200
        sticker = Image.open(io.BytesIO(r.content))
        assert sticker.mode == "RGBA" and 1 <= getattr(sticker, "n_frames", 1) <= 6  # WebP merges equal frames
        alpha = np.asarray(sticker)[..., 3]
        assert alpha.min() == 0 and alpha.max() == 255  # the object over transparency

        assert (await http.delete(f"/v1/videos/{sid}/objects/2")).json() == {"removed": 2}
        assert [o["obj_id"] for o in (await http.get(f"/v1/videos/{sid}")).json()["objects"]] == [1]
        assert (await http.post(f"/v1/videos/{sid}/reset")).json() == {"objects": []}
        assert (await http.delete(f"/v1/videos/{sid}")).status_code == 204
        assert (await http.get(f"/v1/videos/{sid}")).status_code == 404


async def test_video_file_upload_and_busy_session(serve_config, make_clip, tmp_path):
    """An mp4 upload (decoded by PyAV); a second job on a busy session is 409; cancel stops
    a job and keeps the frames done; the job re-runs to completion."""
    av = pytest.importorskip("av", reason="video files need PyAV (pip install 'ivos[video]')")
    frames, _ = make_clip(n=24, h=48, w=64)
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    # slow enough fine-tuning that the job is still running when the second request comes
    async with in_process(serve_config(finetune_steps=400, checkpoint_s=0.2)) as srv:
        http = srv.http
        r = await http.post("/v1/videos", files={"video": ("clip.mp4", path.read_bytes(), "video/mp4")})
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        assert r.json()["num_frames"] == 24 and r.json()["fps"] == 24
        await http.post(f"/v1/videos/{sid}/points", json={"frame_idx": 0, "points": [[15, 17]], "labels": [1]})
        job = (await http.post(f"/v1/videos/{sid}/propagate", json={})).json()
        r = await http.post(f"/v1/videos/{sid}/propagate", json={})
        assert r.status_code == 409 and r.json()["error"]["code"] == "session_busy"
        assert job["job_id"] in r.json()["error"]["message"]
        r = await http.post(f"/v1/videos/{sid}/points", json={"frame_idx": 1, "points": [[15, 17]], "labels": [1]})
        assert r.status_code == 409  # no edits while the job runs
        r = await http.post(f"/v1/videos/{sid}/jobs/{job['job_id']}/cancel")
        assert r.status_code == 200 and r.json()["cancel_requested"]
        assert (await wait_job(http, sid, job["job_id"]))["status"] == "cancelled"
        # not fine-tuned to the end: the head was never stored, the frames done are kept
        job2 = (await http.post(f"/v1/videos/{sid}/propagate", json={"finetune": False})).json()
        done = await wait_job(http, sid, job2["job_id"])
        assert done["status"] == "done" and done["frames_done"] == 24
        assert (await http.get(f"/v1/videos/{sid}")).json()["objects"][0]["masked_frames"] == 24


async def test_quick_start_job_streams_then_keeps_the_whole_head(serve_config, make_clip, png_bytes):
    """With --quick-start the job fine-tunes inside the propagation (no separate fine-tune
    stage): every frame is masked and the object ends with its whole fine-tuned head."""
    frames, _ = make_clip(n=6)
    async with in_process(serve_config(quick_start=2, finetune_steps=4)) as srv:
        http = srv.http
        sid = (await upload_frames(http, frames, png_bytes))["session_id"]
        r = await http.post(f"/v1/videos/{sid}/points", json={"frame_idx": 0, "obj_id": 1, "points": [[15, 17]],
                                                               "labels": [1]})
        assert r.status_code == 200, r.text
        job = (await http.post(f"/v1/videos/{sid}/propagate", json={})).json()
        events = await sse_events(http, f"/v1/videos/{sid}/jobs/{job['job_id']}/events")
        assert events[-1][1]["status"] == "done", events[-1]
        assert not any(d["stage"].startswith("finetune") for _, d in events)
        info = (await http.get(f"/v1/videos/{sid}")).json()
        assert info["objects"][0]["masked_frames"] == 6 and info["objects"][0]["finetuned"]
