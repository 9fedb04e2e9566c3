"""The server is killed (SIGKILL) in the middle of a propagation and restarted on the same data
dir: every session, click and finished mask is still there, the job shows as interrupted, and
running it again finishes it (the fine-tuned head was kept: no second fine-tuning)."""
from __future__ import annotations

import json
import time

import httpx
import pytest


@pytest.fixture(scope="module")
def store_kind():
    """SQLite only: a server on a PostgreSQL store never assumes it is alone (another machine may
    run the job), so a killed server's job shows interrupted only after its heartbeat is stale
    (``job_stale_s``); the PostgreSQL node-kill test comes with replicas on several Ray nodes."""
    return "sqlite"


def wait(http, sid, job_id, until, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/videos/{sid}/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id}: condition not met in {timeout} s: {job}")


def test_sigkill_mid_propagation_loses_nothing(make_server, make_clip, png_bytes):
    n = 80
    frames, _ = make_clip(n=n, h=120, w=160, seed=3)
    # a checkpoint after every frame: the kill below always follows committed frames, and the
    # saves slow the job enough that it is still running then, however fast the machine
    server = make_server("--checkpoint-s", "0")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        files = [("frames", (f"{i}.png", png_bytes(f), "image/png")) for i, f in enumerate(frames)]
        sid = http.post("/v1/videos", files=files).json()["session_id"]
        img = http.post("/v1/images", files={"image": ("a.png", png_bytes(frames[0]), "image/png")}).json()
        http.post(f"/v1/images/{img['session_id']}/clicks", json={"x": 20, "y": 17, "positive": True})
        r = http.post(f"/v1/videos/{sid}/points", json={"frame_idx": 0, "obj_id": 1, "points": [[15, 17]],
                                                         "labels": [1]})
        assert r.status_code == 200
        first = http.post(f"/v1/videos/{sid}/propagate", json={}).json()
        assert wait(http, sid, first["job_id"], lambda j: j["status"] != "running" and j["status"] != "queued"
                    )["status"] == "done"
        before = http.get(f"/v1/videos/{sid}/masks").json()["frames"]
        assert len(before) == n
        # a correction on another frame, then a second propagation that gets killed halfway
        r = http.post(f"/v1/videos/{sid}/points", json={"frame_idx": 30, "obj_id": 2, "points": [[100, 60]],
                                                         "labels": [1]})
        assert r.status_code == 200
        job = http.post(f"/v1/videos/{sid}/propagate", json={}).json()
        running = wait(http, sid, job["job_id"], lambda j: j["stage"] == "propagate" and j["frames_done"] >= 12
                       or j["status"] not in ("queued", "running"))
        assert running["status"] == "running", f"the job ended before the kill: {running}"
    server.kill()

    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        info = http.get(f"/v1/videos/{sid}").json()
        assert info["job"]["job_id"] == job["job_id"] and info["job"]["status"] == "interrupted"
        objects = {o["obj_id"]: o for o in info["objects"]}
        assert objects[1]["clicks"] == {"0": [[15.0, 17.0, 1]]} and objects[2]["clicks"] == {"30": [[100.0, 60.0, 1]]}
        assert objects[1]["masked_frames"] == n  # the first job's masks are all there
        assert objects[2]["finetuned"]  # committed right after fine-tuning
        assert objects[2]["masked_frames"] >= 12  # the frames the killed job had done (checkpointed)
        after = http.get(f"/v1/videos/{sid}/masks").json()["frames"]
        assert after[0]["masks"]["1"] == before[0]["masks"]["1"]  # the annotation, exactly
        image = http.get(f"/v1/images/{img['session_id']}").json()
        assert image["clicks"] == [{"x": 20.0, "y": 17.0, "positive": True}]

        rerun = http.post(f"/v1/videos/{sid}/propagate", json={}).json()
        stages = []
        with http.stream("GET", f"/v1/videos/{sid}/jobs/{rerun['job_id']}/events") as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    stages.append(json.loads(line[6:])["stage"])
        assert not any(s.startswith("finetune") for s in stages), stages  # the head was kept
        done = wait(http, sid, rerun["job_id"], lambda j: j["status"] not in ("queued", "running"))
        assert done["status"] == "done" and done["frames_done"] == n
        info = http.get(f"/v1/videos/{sid}").json()
        assert all(o["masked_frames"] == n for o in info["objects"])
        masks = http.get(f"/v1/videos/{sid}/frames/30/masks").json()["masks"]
        from ivos.formats.rle import rle_decode

        assert rle_decode(masks["2"]["rle"]).any()
