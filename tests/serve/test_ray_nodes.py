"""Ray Serve across nodes: a Ray cluster of two nodes on this machine (``RayCluster``: a head
``node-a`` and a second ``node-b``, one CPU each, each in its own temporary folder and process
group), ``ivos serve --ray --ray-address <head> --replicas 2 --ray-replicas-per-node 1`` joined
to it with one replica per node, all on the PostgreSQL store:

* ``--replicas 2`` on a cluster of two nodes with the SQLite store is refused (exit 2, saying
  why);
* 32 concurrent image sessions (clicks) and a video propagation: nothing but 429 +
  Retry-After, every mask equal to the in-process one;
* node-b killed (SIGKILL of its raylet, workers and agents) in the middle of clicks and of a
  propagation running on it: every session is still there, every click answered 200 is in its
  session, and the job is taken over by the replica on node-a (``--job-stale-s 3``) and
  finishes there without fine-tuning again.

The tests share one cluster and one server (starting them costs about a minute on two
cores); the node-kill test comes last. Counts are printed (``-s``) for
benchmarks/results/ray_nodes.md."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'ivos[ray]')")

from ivos.serve.testing import RayCluster, free_port, stop_process_group  # noqa: E402

STARTUP_S = 240
SETTINGS = ["--threads=1", "--finetune-steps=5", "--finetune-augmentations=3"]
STALE_S = 3.0


@pytest.fixture(scope="module")
def store_kind():
    """PostgreSQL: the store replicas on several machines share."""
    return "postgresql"


@pytest.fixture(scope="module")
def cluster():
    made = RayCluster()
    try:
        made.add_node("node-a", cpus=1, resources={"node_a": 1})
        made.add_node("node-b", cpus=1, resources={"node_b": 1})
        yield made
    finally:
        made.close()


def ivos_ray(cluster, data_dir, bundles, *flags, port=None):
    """``ivos serve --ray`` joined to ``cluster`` (its process, port, log)."""
    port = port or free_port()
    log = data_dir.parent / f"ivos-ray-{port}.log"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ivos.serve.cli", "--ray", "--ray-address", cluster.address, "--port", str(port),
           "--data-dir", str(data_dir), "--model", str(bundles["click"]), "--osvos-model", str(bundles["osvos"]),
           *SETTINGS, "--log-level", "warning", *flags]
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**cluster.env})
    return proc, port, log


@pytest.fixture(scope="module")
def server(cluster, tmp_path_factory, bundles, module_store_url):
    """``ivos serve --ray --replicas 2 --ray-replicas-per-node 1`` on ``cluster`` and PostgreSQL;
    yields (url, {node name: instance}) once a replica on each node answers ready."""
    import httpx

    data = tmp_path_factory.mktemp("ivos-ray") / "data"
    proc, port, log = ivos_ray(cluster, data, bundles, "--replicas", "2", "--ray-cpus", "1", "--ray-replicas-per-node",
                               "1", "--ray-proxy", "head", "--store", module_store_url, "--job-stale-s", str(STALE_S),
                               "--checkpoint-s", "0.5")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, ready = time.monotonic() + STARTUP_S, {}
        while time.monotonic() < deadline and len(ready) < 2:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                r = httpx.get(url + "/readyz", timeout=5)
                if r.status_code == 200:
                    instance = r.headers["x-ivos-instance"]
                    ready[instance.split("_")[1]] = instance
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert sorted(ready) == ["node-a", "node-b"], f"replicas ready: {ready}\n{log.read_text()[-3000:]}"
        yield url, ready
    finally:
        stop_process_group(proc)


def scene(seed, h=48, w=64):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    y, x = int(rng.integers(4, 20)), int(rng.integers(4, 30))
    image[y:y + 20, x:x + 26] = (220, 140, 30)
    return image


class Tally:
    """Counts of one test (thread-safe): requests by outcome."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, key, n=1):
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n


def request(http, tally, method, path, **kwargs):
    """``method path``; 429 waits ``Retry-After`` and repeats (counted); a 5xx or a broken
    connection is returned as None (counted) for the caller to check what happened."""
    import httpx

    while True:
        try:
            r = http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            tally.add(f"transport error ({type(e).__name__})")
            return None
        if r.status_code == 429:
            assert "retry-after" in r.headers, r.text
            tally.add("429")
            time.sleep(float(r.headers["retry-after"]))
            continue
        if r.status_code >= 500:
            tally.add(f"{r.status_code} {r.json().get('error', {}).get('code') if r.headers.get('content-type', '').startswith('application/json') else r.text[:60]}")
            return None
        return r


def click(http, tally, sid, x, y, positive, n):
    """Click ``n`` of session ``sid``, exactly once: when the answer is lost (a replica died),
    the session says whether it was saved; then (n, mask RLE)."""
    body = {"x": x, "y": y, "positive": positive}
    for _ in range(20):
        r = request(http, tally, "POST", f"/v1/images/{sid}/clicks", json=body)
        if r is not None:
            assert r.status_code == 200, r.text
            return r.json()["clicks"], r.json()["mask"]["rle"]
        info = None
        while info is None:
            info = request(http, tally, "GET", f"/v1/images/{sid}")
            time.sleep(0.2 if info is None else 0)
        if len(info.json()["clicks"]) == n:  # saved before the answer was lost
            tally.add("click saved, answer lost")
            return n, info.json()["mask"]["rle"]
        time.sleep(0.5)
    raise AssertionError(f"click {n} of {sid} never went through")


def test_sqlite_refused_across_nodes(cluster, tmp_path, bundles):
    proc, _, log = ivos_ray(cluster, tmp_path / "data", bundles, "--replicas", "2")
    assert proc.wait(120) == 2, log.read_text()[-3000:]
    text = log.read_text()
    assert "cannot be shared across machines" in text and "--store postgresql://" in text, text[-2000:]


def video_session(http, png_bytes, make_clip, n, h, w, seed):
    frames, _ = make_clip(n=n, h=h, w=w, seed=seed)
    files = [("frames", (f"{i}.png", png_bytes(f), "image/png")) for i, f in enumerate(frames)]
    r = http.post("/v1/videos", files=files)
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    r = http.post(f"/v1/videos/{sid}/points", json={"frame_idx": 0, "obj_id": 1, "points": [[15, 17]], "labels": [1]})
    assert r.status_code == 200, r.text
    return sid


def wait_job(http, sid, job_id, timeout=240, seen=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = http.get(f"/v1/videos/{sid}/jobs/{job_id}")
        if r.status_code == 200:
            job = r.json()
            if seen is not None:
                seen.append((job["params"].get("resumed", 0), job["stage"]))
            if job["status"] not in ("queued", "running"):
                return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished in {timeout} s")


def test_32_sessions_on_two_nodes(server, bundles, png_bytes, make_clip):
    """32 image sessions clicking at once (3 clicks each) and a video propagation, through
    both replicas: only 429 (with Retry-After) refusals, every mask the in-process one."""
    import httpx

    import ivos
    from ivos.formats.rle import rle_decode

    url, _ = server
    model = ivos.load(bundles["click"], backend="ort", threads=1)
    tally, served = Tally(), Tally()
    t0 = time.monotonic()
    with httpx.Client(base_url=url, timeout=120) as http:
        vid = video_session(http, png_bytes, make_clip, 12, 48, 64, seed=1)
        job = http.post(f"/v1/videos/{vid}/propagate", json={})
        assert job.status_code == 202, job.text

    def session(k):
        image = scene(100 + k)
        local = ivos.ImagePredictor(model)
        local.set_image(image)
        rng = np.random.default_rng(k)
        with httpx.Client(base_url=url, timeout=120) as http:
            r = request(http, tally, "POST", "/v1/images", files={"image": ("a.png", png_bytes(image), "image/png")})
            assert r is not None and r.status_code == 201, r and r.text
            sid = r.json()["session_id"]
            for n in range(1, 4):
                x, y, p = float(rng.uniform(0, 64)), float(rng.uniform(0, 48)), bool(n == 1 or rng.random() < 0.6)
                got, rle = click(http, tally, sid, x, y, p, n)
                assert got == n
                np.testing.assert_array_equal(rle_decode(rle), local.add_click(x, y, p).mask)
                tally.add("clicks")
            info = http.get(f"/v1/images/{sid}")
            served.add(info.headers["x-ivos-instance"].split("_")[1])
            assert len(info.json()["clicks"]) == 3

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(session, range(32)))
    with httpx.Client(base_url=url, timeout=120) as http:
        final = wait_job(http, vid, job.json()["job_id"])
        assert final["status"] == "done", final
        assert len(http.get(f"/v1/videos/{vid}/masks").json()["frames"]) == 12
    wall = time.monotonic() - t0
    errors = {k: v for k, v in tally.counts.items() if k not in ("clicks", "429")}
    print(f"\nray_nodes load: 32 image sessions, {tally.counts.get('clicks', 0)} clicks, 1 propagation job "
          f"(12 frames) done, 429: {tally.counts.get('429', 0)}, other errors: {errors or 0}, "
          f"sessions last read on {served.counts}, {wall:.1f} s")
    assert not errors, errors
    assert tally.counts["clicks"] == 96


def test_node_killed_mid_work(server, cluster, png_bytes, make_clip):
    """node-b is killed while image sessions click and a propagation runs on its replica: every
    session stays, every click answered is saved, the job finishes on node-a (taken over, not
    fine-tuned again)."""
    import httpx

    url, ready = server
    tally = Tally()
    with httpx.Client(base_url=url, timeout=120) as http:
        # image sessions clicking all along
        stop_clicking = threading.Event()
        acknowledged: dict[str, list] = {}

        def clicker(k):
            rng = np.random.default_rng(1000 + k)
            with httpx.Client(base_url=url, timeout=60) as h:
                r = None
                while r is None:
                    r = request(h, tally, "POST", "/v1/images",
                                files={"image": ("a.png", png_bytes(scene(200 + k)), "image/png")})
                assert r.status_code == 201, r.text
                sid = r.json()["session_id"]
                acknowledged[sid] = []
                while not stop_clicking.is_set() and len(acknowledged[sid]) < 300:
                    x, y = round(float(rng.uniform(0, 64)), 2), round(float(rng.uniform(0, 48)), 2)
                    p = not acknowledged[sid] or bool(rng.random() < 0.6)
                    got, _ = click(h, tally, sid, x, y, p, len(acknowledged[sid]) + 1)
                    acknowledged[sid].append({"x": x, "y": y, "positive": p})
                    tally.add("clicks")
                    time.sleep(0.1)

        pool = ThreadPoolExecutor(6)
        clickers = [pool.submit(clicker, k) for k in range(6)]
        deadline = time.monotonic() + 120
        while tally.counts.get("clicks", 0) < 12:  # clicking on both replicas before the job starts
            assert time.monotonic() < deadline and not any(f.done() for f in clickers), tally.counts
            time.sleep(0.1)
        # a propagation on node-b's replica: the replica that takes POST /propagate runs it
        n_frames = 60
        vid = video_session(http, png_bytes, make_clip, n_frames, 96, 128, seed=2)
        job = None
        for _ in range(16):
            r = http.post(f"/v1/videos/{vid}/propagate", json={})
            assert r.status_code == 202, r.text
            if r.headers["x-ivos-instance"] == ready["node-b"]:
                job = r.json()
                break
            http.post(f"/v1/videos/{vid}/jobs/{r.json()['job_id']}/cancel")
            wait_job(http, vid, r.json()["job_id"], timeout=60)
        assert job is not None, "no propagation landed on node-b in 16 tries"

        seen: list = []
        deadline = time.monotonic() + 180
        while True:
            j = http.get(f"/v1/videos/{vid}/jobs/{job['job_id']}").json()
            seen.append((j["params"].get("resumed", 0), j["stage"]))
            if j["stage"] == "propagate" and j["frames_done"] >= 3:
                break
            assert j["status"] in ("queued", "running") and time.monotonic() < deadline, j
            time.sleep(0.05)
        assert j["status"] == "running"
        cluster.kill("node-b")
        killed = time.monotonic()
        tally.add("clicks before the kill", tally.counts.get("clicks", 0))

        final = wait_job(http, vid, job["job_id"], timeout=240, seen=seen)
        resumed_after = time.monotonic() - killed
        time.sleep(2)  # a few clicks more, on node-a alone
        stop_clicking.set()
        for f in clickers:
            f.result()
        pool.shutdown()

        assert final["status"] == "done", final
        assert final["params"].get("resumed") == 1, (final, seen[-10:], time.monotonic() - killed)
        after = [stage for resumed, stage in seen if resumed >= 1]
        assert not any(s.startswith("finetune") for s in after), after  # the saved head was used
        info = http.get(f"/v1/videos/{vid}").json()
        assert info["objects"][0]["masked_frames"] == n_frames and info["objects"][0]["finetuned"]
        for sid, clicks in acknowledged.items():
            r = http.get(f"/v1/images/{sid}")
            assert r.status_code == 200, r.text
            assert r.json()["clicks"] == clicks, sid  # none lost, none twice
        replicas_now = {http.get("/readyz").headers["x-ivos-instance"] for _ in range(6)}
    errors = {k: v for k, v in tally.counts.items() if k not in ("clicks", "clicks before the kill", "429")}
    print(f"\nray_nodes kill: node-b SIGKILLed mid-propagation; 1 + 6 sessions kept, {tally.counts['clicks']} clicks "
          f"saved ({tally.counts['clicks before the kill']} before the kill), none lost; the job taken over and done "
          f"{resumed_after:.1f} s after the kill (stale after {STALE_S} s); 429: {tally.counts.get('429', 0)}; "
          f"failed answers retried: {errors or 0}; replicas answering after: {sorted(replicas_now)}")
    assert replicas_now == {ready["node-a"]}
