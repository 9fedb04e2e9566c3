"""``python -m ivos.bench.store``: what the PostgreSQL store (``ivos serve --store
postgresql://...``) costs against the SQLite store in the data dir, measured side by side in
one run on a throw-away PostgreSQL server (``ivos.serve.testing.PostgresServer``: TCP on
127.0.0.1, PostgreSQL's default durability, ``fsync`` and ``synchronous_commit`` on).

* Clicks: the same click sequences (``--rounds`` images x ``--clicks``) through two ``ivos
  serve`` processes, one per store, rounds alternating which goes first; the client's wall time
  per ``POST .../clicks`` (p50, p90), and the request floor (``POST .../undo`` on a session
  without clicks: routing, two session reads, no model). Then the store calls of one click
  alone (read the session twice, commit the click with its mask), in-process, per store.
* Blobs: a 3000-frame video session (the demo clip upscaled to 480x854 and looped, H.264;
  one object with a mask on every frame, the clip's ground truth): bytes and time to store and
  to read back the video, the same video as 3000 JPEG frames, and the ``VideoState`` file,
  in a local folder (``LocalBlobs``) and in PostgreSQL (``PostgresBlobs``); and what one video
  edit costs (save the state, store it, commit the row).
* Restart: ``ivos serve --store`` with an image session clicking and a video session taking
  points in two loops, while PostgreSQL stops for ``--down-s`` seconds and starts again: the
  answers before, while it is down and after (status counts, Retry-After), how long after the
  restart the first request succeeded, and whether each session holds exactly the changes
  answered 200.

Writes ``--out`` (markdown, the command at the top) and the same figures as JSON beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import ivos
from ivos.serve.testing import PostgresServer, ServerProcess, stop_process_group

from ._common import write_report
from .serve import clicks, frame, http_session, png, request_floor, stats

SIZE = (480, 854)
FRAMES = 3000


# ---- clicks --------------------------------------------------------------------------------
def store_calls(store, n: int, mask_rle: dict) -> list[float]:
    """ms of the store calls of one click (session read by the route, re-read in the lock,
    the click committed with its mask), ``n`` times on one session."""
    from ivos.serve.store import ClickRecord, SessionRecord

    sid = "img_" + os.urandom(12).hex()
    store.create_session(SessionRecord(sid, "image", "", time.time(), time.time(), 0, SIZE[1], SIZE[0],
                                       media=f"sessions/{sid}/image.png"))
    timings = {"prepare_ms": 1.0, "render_ms": 1.0, "infer_ms": 50.0, "post_ms": 1.0, "crf_ms": 9.0, "total_ms": 62.0}
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        store.get_session(sid)
        rec = store.get_session(sid)
        store.add_click(sid, rec.rev, ClickRecord(i + 1, 10.0 + i, 20.0, True, mask_rle, timings))
        out.append((time.perf_counter() - t0) * 1e3)
    store.delete_session(sid)
    return out


def bench_clicks(args, pg: PostgresServer, tmp: Path, model_args: list[str]) -> dict:
    import httpx

    from ivos.formats.rle import rle_encode
    from ivos.serve.store import SQLiteStore
    from ivos.serve.store_postgres import PostgresStore

    image = frame()
    image_png = png(image)
    url = pg.create_database("ivos_clicks")
    servers = {"sqlite": ServerProcess(tmp / "sqlite", model_args, startup_s=180),
               "postgresql": ServerProcess(tmp / "pg", [*model_args, "--store", url], startup_s=180),
               "postgresql --fsync": ServerProcess(tmp / "pg-fsync", [*model_args, "--store", url, "--fsync"],
                                                   startup_s=180)}
    times: dict[str, list[float]] = {k: [] for k in servers}
    floors = {}
    try:
        for s in servers.values():
            s.start()
        clients = {k: httpx.Client(base_url=s.url, timeout=120) for k, s in servers.items()}
        for k in servers:  # warm-up
            http_session(servers[k].url, image_png, clicks(0, 5), clients[k])
        order = list(servers)
        for r in range(args.rounds):
            seq = clicks(r + 1, args.clicks)
            for k in order[r % len(order):] + order[:r % len(order)]:  # who goes first rotates
                times[k].extend(http_session(servers[k].url, image_png, seq, clients[k]))
        for k in servers:
            floors[k] = request_floor(clients[k], image_png, n=200)
        for c in clients.values():
            c.close()
    finally:
        for s in servers.values():
            s.stop()
    # the store calls alone, in process, blocks alternating
    mask = np.zeros(SIZE, np.uint8)
    mask[120:360, 200:600] = 1
    rle = rle_encode(mask)
    calls_url = pg.create_database("ivos_calls")
    stores = {"sqlite": SQLiteStore(tmp / "calls.sqlite3"), "postgresql": PostgresStore(calls_url),
              "sqlite --fsync": SQLiteStore(tmp / "calls-fsync.sqlite3", fsync=True),
              "postgresql --fsync": PostgresStore(calls_url, fsync=True)}
    calls: dict[str, list[float]] = {k: [] for k in stores}
    order = list(stores)
    for block in range(12):
        for k in order[block % len(order):] + order[:block % len(order)]:
            calls[k].extend(store_calls(stores[k], 40, rle))
    for s in stores.values():
        s.close()
    out: dict = {"http": {k: stats(v) for k, v in times.items()},
                 "request_floor": {k: stats(v) for k, v in floors.items()},
                 "store_calls": {k: stats(v) for k, v in calls.items()}}
    out["delta_ms_p50"] = {m: out[m]["postgresql"]["p50"] - out[m]["sqlite"]["p50"]
                           for m in ("http", "request_floor", "store_calls")}
    return out


# ---- blobs ---------------------------------------------------------------------------------
def make_media(folder: Path, n: int) -> tuple[Path, Path, list[np.ndarray]]:
    """(an H.264 mp4 of ``n`` frames at 480x854, a folder of the same frames as JPEGs, the
    ground-truth masks of the demo clip's frames at that size)."""
    import av
    from PIL import Image

    from ivos.formats.rle import rle_decode

    data = Path(ivos.__file__).parent / "data"
    meta = json.loads((data / "demo_clip.json").read_text())
    source = ivos.open_video(data / "demo_clip.mp4", cache_size=1)
    frames = [np.asarray(Image.fromarray(np.asarray(source[i])).resize((SIZE[1], SIZE[0]), Image.BILINEAR))
              for i in range(len(source))]
    source.close()
    masks = [np.asarray(Image.fromarray(rle_decode(r) * 255).resize((SIZE[1], SIZE[0]), Image.NEAREST)) > 0
             for r in meta["ground_truth_rle"]]
    video = folder / "video.mp4"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(n):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    jpegs = folder / "frames"
    jpegs.mkdir()
    encoded = []
    for f in frames:
        import io

        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=90)
        encoded.append(buf.getvalue())
    for i in range(n):
        (jpegs / f"{i:05d}.jpg").write_bytes(encoded[i % len(encoded)])
    return video, jpegs, [m.astype(np.uint8) for m in masks]


def make_state(video: Path, masks: list[np.ndarray]):
    """A VideoState of ``video`` with one object: an annotation on frame 0 and a propagated
    mask (the clip's ground truth, cycled) with its confidence and thumbnail on every frame."""
    from PIL import Image

    from ivos.video.state import VideoState
    from ivos.video.tracks import ObjectTrack, compact_rle

    source = ivos.open_video(video, cache_size=1)
    n = len(source)
    track = ObjectTrack(obj_id=1)
    track.annotate(0, masks[0], [(120.0, 136.0, 1)])
    rles = [compact_rle(m) for m in masks]
    thumbs = [np.asarray(Image.fromarray(m * 255).resize((32, 32))) for m in masks]
    for i in range(1, n):
        track.masks[i] = rles[i % len(rles)]
        track.confidence[i] = 0.9
    state = VideoState(source, objects={1: track}, thumbs={i: thumbs[i % len(thumbs)] for i in range(n)})
    return state


def timed(fn, repeat: int = 3) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return float(np.median(out))


def folder_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_blobs(args, pg: PostgresServer, tmp: Path) -> dict:
    from ivos.serve.blobs import LocalBlobs
    from ivos.serve.store import SessionRecord, SQLiteStore
    from ivos.serve.store_postgres import PostgresBlobs, PostgresStore
    from ivos.video.state import VideoState

    work = tmp / "media"
    work.mkdir()
    t0 = time.perf_counter()
    video, jpegs, masks = make_media(work, args.frames)
    made_s = time.perf_counter() - t0
    state = make_state(video, masks)
    state_file = work / "state.ivs"
    save_s = timed(lambda: state.save(state_file, embed_frames=False))
    load_s = timed(lambda: VideoState.load(state_file, video=str(video)))
    items = {"video (H.264 mp4)": video, f"{args.frames} JPEG frames": jpegs, "VideoState file": state_file}

    pg_store = PostgresStore(pg.create_database("ivos_blobs"))
    kinds = {"local folder (LocalBlobs)": LocalBlobs(tmp / "local"),
             "PostgreSQL (PostgresBlobs)": PostgresBlobs(pg_store.db, tmp / "copies")}
    rows = []
    for kind, blobs in kinds.items():
        for n, (name, path) in enumerate(items.items()):
            key = f"sessions/s{n}/{path.name}"
            before = blobs.bytes_used() if hasattr(blobs, "bytes_used") else 0
            t0 = time.perf_counter()
            blobs.put_tree(key, path) if path.is_dir() else blobs.put_file(key, path)
            put_s = [time.perf_counter() - t0]
            stored = blobs.bytes_used() - before if hasattr(blobs, "bytes_used") else folder_bytes(blobs.path(key))
            if path.is_file():  # two more writes (other keys) for a median
                for extra in (1, 2):
                    t0 = time.perf_counter()
                    blobs.put_file(f"{key}.{extra}", path)
                    put_s.append(time.perf_counter() - t0)
                    blobs.delete(f"{key}.{extra}")
            put_s = float(np.median(put_s))

            def read():
                blobs.forget(key)
                blobs.fetch(key)
            read_s = 0.0 if blobs.local else timed(read, repeat=1 if path.is_dir() else 3)
            rows.append({"store": kind, "item": name, "bytes": folder_bytes(path), "stored_bytes": int(stored),
                         "put_s": put_s, "read_s": read_s})
    # one video edit: the state saved, stored as a new blob, the row committed
    edits = {}
    sqlite = SQLiteStore(tmp / "edits.sqlite3")
    for kind, (store, blobs) in {"SQLite + local folder": (sqlite, kinds["local folder (LocalBlobs)"]),
                                 "PostgreSQL": (pg_store, kinds["PostgreSQL (PostgresBlobs)"])}.items():
        sid = "vid_" + os.urandom(12).hex()
        store.create_session(SessionRecord(sid, "video", "", time.time(), time.time(), 0, SIZE[1], SIZE[0],
                                           num_frames=args.frames, fps=25.0, media=f"sessions/{sid}/video"))
        out = []
        for rev in range(5):
            key = f"sessions/{sid}/state-{rev + 1}.ivs"
            blobs.path(key).parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            path = state.save(blobs.path(key), embed_frames=False)
            blobs.put_file(key, path)
            store.set_state(sid, rev, key)
            out.append(time.perf_counter() - t0)
        edits[kind] = float(np.median(out))
    sqlite.close()
    pg_store.close()
    return {"frames": args.frames, "size": list(SIZE), "media_made_s": made_s, "state_save_s": save_s,
            "state_load_s": load_s, "rows": rows, "edit_s": edits}


# ---- restart -------------------------------------------------------------------------------
def bench_restart(args, pg: PostgresServer, tmp: Path, model_args: list[str]) -> dict:
    import httpx

    url = pg.create_database("ivos_restart")
    server = ServerProcess(tmp / "restart", [*model_args, "--store", url, "--request-threads", "2"],
                           startup_s=180).start()
    log: list[tuple[str, float, float, int, str | None, dict]] = []
    marks: dict[str, float] = {}
    stop = threading.Event()
    done: dict[str, list] = {"click": [], "points": []}
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            image_png = png(frame())
            sid = http.post("/v1/images", files={"image": ("f.png", image_png, "image/png")}).json()["session_id"]
            vid = http.post("/v1/videos/demo").json()["session_id"]

        def loop(name: str) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                for i in range(100_000):
                    if stop.is_set():
                        return
                    if name == "click":
                        x, y = 10.0 + (i * 37) % 830, 10.0 + (i * 23) % 460
                        path, body, change = f"/v1/images/{sid}/clicks", {"x": x, "y": y}, (x, y)
                    else:
                        point = [float(5 + (i * 7) % 470), float(5 + (i * 11) % 262)]
                        path, change = f"/v1/videos/{vid}/points", (i % 40, point)
                        body = {"frame_idx": i % 40, "points": [point], "labels": [1]}
                    t0 = time.monotonic()
                    r = http.post(path, json=body)
                    err = r.json().get("error", {}) if r.status_code != 200 else {}
                    log.append((name, t0, time.monotonic(), r.status_code, r.headers.get("retry-after"), err))
                    if r.status_code == 200:
                        done[name].append(change)
                    else:
                        time.sleep(0.2)

        threads = [threading.Thread(target=loop, args=(n,)) for n in done]
        for t in threads:
            t.start()
        time.sleep(args.before_s)
        marks["stopping"] = time.monotonic()
        pg.stop("fast")
        marks["stopped"] = time.monotonic()
        time.sleep(args.down_s)
        marks["starting"] = time.monotonic()
        pg.start()
        marks["started"] = time.monotonic()
        time.sleep(args.after_s)
        stop.set()
        for t in threads:
            t.join(180)
        with httpx.Client(base_url=server.url, timeout=120) as http:
            stored_clicks = [(c["x"], c["y"]) for c in http.get(f"/v1/images/{sid}").json()["clicks"]]
            objects = http.get(f"/v1/videos/{vid}").json()["objects"]
    finally:
        stop.set()
        server.stop()
    stored_points = sorted((int(f), [x, y]) for o in objects for f, cs in o["clicks"].items() for x, y, _ in cs)

    def phase(t0: float, t1: float) -> str:
        if t1 <= marks["stopping"]:
            return "before"
        if t0 >= marks["stopped"] and t1 <= marks["starting"]:
            return "down"
        if t0 >= marks["started"]:
            return "after"
        return "straddling"

    phases: dict[str, dict[str, int]] = {}
    for _, t0, t1, status, retry, err in log:
        key = str(status) + ("" if status == 200 else f" {err.get('code')}" + (" + Retry-After" if retry else ""))
        counts = phases.setdefault(phase(t0, t1), {})
        counts[key] = counts.get(key, 0) + 1
    first_ok = min((t1 for _, t0, t1, status, *_ in log if status == 200 and t0 >= marks["starting"]), default=None)
    return {"down_s": marks["starting"] - marks["stopped"], "phases": phases,
            "first_200_after_start_s": None if first_ok is None else first_ok - marks["started"],
            "requests": len(log), "statuses": sorted({s for _, _, _, s, *_ in log}),
            "503_without_retry_after": sum(1 for *_, s, retry, _ in log if s == 503 and not retry),
            "image_clicks_match": stored_clicks == done["click"], "image_clicks": len(stored_clicks),
            "video_points_match": stored_points == sorted(done["points"]), "video_points": len(stored_points)}


# ---- replicas under load -------------------------------------------------------------------
LOAD_SECTION = "## Throughput and click latency: 1 process on SQLite, 1 and 2 Ray replicas on PostgreSQL"


def click_load(url: str, image_png: bytes, sessions: int, n_clicks: int, seed: int) -> dict:
    """``sessions`` client threads, each its own image session (uploads before the clock
    starts), all starting together, ``n_clicks`` clicks each; 429 waits its Retry-After and
    repeats (counted). -> {"ms": [per 200 click], "wall_s", "errors", "429", "instances"}."""
    import httpx

    barrier = threading.Barrier(sessions + 1)
    lock = threading.Lock()
    out: dict = {"ms": [], "errors": 0, "429": 0, "instances": {}}

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            sid = None
            try:
                r = http.post("/v1/images", files={"image": ("f.png", image_png, "image/png")})
                sid = r.json()["session_id"] if r.status_code == 201 else None
            except httpx.HTTPError:
                pass
            barrier.wait()
            if sid is None:
                with lock:
                    out["errors"] += n_clicks
                return
            for x, y, p in clicks(seed * 100 + k, n_clicks):
                while True:
                    t0 = time.perf_counter()
                    try:
                        r = http.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y, "positive": p})
                    except httpx.HTTPError:
                        r = None
                    ms = (time.perf_counter() - t0) * 1e3
                    with lock:
                        if r is not None and r.status_code == 429:
                            out["429"] += 1
                        elif r is not None and r.status_code == 200:
                            out["ms"].append(ms)
                            inst = r.headers.get("x-ivos-instance", "?")
                            out["instances"][inst] = out["instances"].get(inst, 0) + 1
                        else:
                            out["errors"] += 1
                    if r is not None and r.status_code == 429:
                        time.sleep(float(r.headers.get("retry-after", "1")))
                        continue
                    break
            http.delete(f"/v1/images/{sid}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(sessions)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    out["wall_s"] = time.perf_counter() - t0
    return out


def ray_server(cluster, data_dir: Path, model_args: list[str], flags: list[str], expect: int, startup_s: float = 240):
    """``ivos serve --ray --ray-address <cluster>`` with ``flags``, once ``expect`` replicas (by
    node) answer /readyz; -> (process, url)."""
    import signal
    import subprocess

    import httpx

    from ivos.serve.testing import free_port

    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"{data_dir.name}.log"
    cmd = [sys.executable, "-m", "ivos.serve.cli", "--ray", "--ray-address", cluster.address, "--port", str(port),
           "--data-dir", str(data_dir), *model_args, *flags]
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**cluster.env})
    url, ready = f"http://127.0.0.1:{port}", set()
    deadline = time.monotonic() + startup_s
    while len(ready) < expect:
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"ivos serve --ray not ready ({ready}):\n{log.read_text()[-3000:]}")
        try:
            r = httpx.get(url + "/readyz", timeout=5)
            if r.status_code == 200:
                ready.add(r.headers["x-ivos-instance"].split("_")[1])
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    return proc, url


def bench_replicas(args, pg: PostgresServer, tmp: Path, model_args: list[str]) -> dict:
    """The same click load on (a) ``ivos serve`` (SQLite, one process), (b) ``ivos serve --ray
    --replicas 1`` and (c) ``--replicas 2 --ray-replicas-per-node 1`` on a two-node Ray cluster
    (``RayCluster``, one CPU per node), both on PostgreSQL; each after a warm-up."""
    from ivos.serve.testing import RayCluster

    image_png = png(frame())
    rows: dict[str, dict] = {}

    def measure(name: str, url: str, warm: int) -> None:
        click_load(url, image_png, warm, 2, seed=99)  # warm-up: every replica loads its model
        r = click_load(url, image_png, args.sessions, args.load_clicks, seed=1)
        r["start_s"] = started
        rows[name] = r
        print(f"{name}: {len(r['ms'])} clicks in {r['wall_s']:.1f} s, errors {r['errors']}", file=sys.stderr)

    t0 = time.perf_counter()
    server = ServerProcess(tmp / "load-sqlite", model_args, startup_s=180).start()
    started = time.perf_counter() - t0
    try:
        measure("ivos serve, SQLite, 1 process", server.url, 2)
    finally:
        server.stop()
    for n in (1, 2):  # a fresh cluster each: Serve outlives the ivos serve that started it
        with RayCluster() as cluster:
            cluster.add_node("node-a", cpus=1, resources={"node_a": 1})
            cluster.add_node("node-b", cpus=1, resources={"node_b": 1})
            url_db = pg.create_database(f"ivos_replicas_{n}")
            flags = ["--replicas", str(n), "--ray-cpus", "1", "--ray-proxy", "head", "--store", url_db]
            if n == 2:
                flags += ["--ray-replicas-per-node", "1"]
            t0 = time.perf_counter()
            proc, url = ray_server(cluster, tmp / f"load-ray{n}", model_args, flags, expect=n, startup_s=150)
            started = time.perf_counter() - t0
            try:
                measure(f"ivos serve --ray --replicas {n}, PostgreSQL" + (", one per node" if n == 2 else ""),
                        url, 2 * n)
            finally:
                stop_process_group(proc)
    return {name: {"clicks": len(r["ms"]), "wall_s": r["wall_s"], "clicks_per_s": len(r["ms"]) / r["wall_s"],
                   **{k: v for k, v in stats(r["ms"]).items() if k != "n"}, "errors": r["errors"],
                   "429": r["429"], "instances": r["instances"], "start_s": r["start_s"]}
            for name, r in rows.items()}


def replicas_report(command: str, env: dict, args, rows: dict) -> list[str]:
    def nodes(instances: dict) -> str:
        by: dict[str, int] = {}
        for inst, n in instances.items():
            key = inst.split("_")[1] if inst.count("_") >= 2 else "one process"  # inst_<node>_<random>
            by[key] = by.get(key, 0) + n
        return ", ".join(f"{k} {v}" for k, v in sorted(by.items()))

    niced = os.nice(0)
    if niced:
        command = f"nice -n {niced} " + command
    return [LOAD_SECTION, "",
            "Command (one run, the three configurations one after the other with the same load):", "",
            f"    {command.strip()}", "",
            f"Load: {args.sessions} client threads, each its own image session on the demo clip's first frame at "
            f"{SIZE[0]}x{SIZE[1]} (uploaded before the clock starts), {args.load_clicks} clicks each (fixed "
            "positions inside the image, the first on the object), all threads starting together; a warm-up of "
            "2 clicks in 2 sessions per replica first. Click bundle "
            f"{env['model']} with `--threads {env['threads']}`, the shipped OSVOS bundle (no propagation runs). "
            "(a) plain `ivos serve` with its SQLite store; (b) and (c) `ivos serve --ray --ray-address <head> "
            "--ray-cpus 1 --ray-proxy head --store postgresql://...` on a two-node Ray cluster "
            f"(`RayCluster`, `--num-cpus 1` per node), PostgreSQL {env['postgres']} (`PostgresServer`, TCP "
            "on 127.0.0.1, fsync on), (c) with `--replicas 2 --ray-replicas-per-node 1`. 429 answers wait their "
            "Retry-After and are repeated (counted, not errors); errors are any other non-200 or broken "
            "connection. Latency: the client's wall time per `POST .../clicks` answered 200; clicks/s: clicks "
            "answered 200 over the wall time from the start to the last answer.", "",
            "| configuration | clicks | clicks/s | p50 (ms) | p99 (ms) | errors | 429 | clicks by node |",
            "|---|---|---|---|---|---|---|---|",
            *(f"| {name} | {r['clicks']} | {r['clicks_per_s']:.2f} | {r['p50']:.0f} | {r['p99']:.0f} | "
              f"{r['errors']} | {r['429']} | {nodes(r['instances'])} |" for name, r in rows.items()),
            "",
            f"Machine: {env['platform']}, {env['cpus']} CPUs shared with other work (load average at the end "
            f"{env['loadavg_at_end'][0]:.2f})" + (", run under `nice`" if niced else "") + ". The two Ray \"nodes\" are processes on the same "
            "2 cores, so the two replicas of (c) share the cores one replica already uses: no speed-up is "
            "expected from the second replica here; on two machines each replica would have its own cores. "
            "The figures show what Ray Serve's proxy and PostgreSQL add per click against the plain server, and "
            "that the load is spread over both nodes without errors. "
            f"{args.sessions * args.load_clicks} clicks per configuration, answered within a few seconds: a "
            "small sample, p99 is about the slowest click.", ""]


def write_section(path: Path, lines: list[str]) -> None:
    """Puts ``lines`` (a section starting with LOAD_SECTION) at the end of ``path``, in place of
    an older copy of it."""
    text = path.read_text() if path.is_file() else ""
    if LOAD_SECTION in text:
        text = text[:text.index(LOAD_SECTION)]
    path.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines))


# ---- report --------------------------------------------------------------------------------
def mb(n: float) -> str:
    return f"{n / 2 ** 20:.1f}"


def server_name(kind: str) -> str:
    """"postgresql --fsync" -> "ivos serve --store postgresql://... --fsync"."""
    if kind.startswith("postgresql"):
        return "ivos serve --store postgresql://..." + kind[len("postgresql"):]
    return "ivos serve (SQLite)" + kind[len("sqlite"):]


def report(command: str, env: dict, result: dict) -> list[str]:
    lines = ["# The PostgreSQL store against SQLite: per click, session files, a database restart", "",
             "Command (one run; the two stores alternate within it, so the differences are the figures):", "",
             f"    {command.strip()}", "",
             f"PostgreSQL {env['postgres']} started by the benchmark (``ivos.serve.testing.PostgresServer``: TCP on "
             "127.0.0.1, PostgreSQL's defaults, fsync on), the SQLite store in a data dir. Durability as the "
             "stores ship: without ``--fsync`` no commit waits for the disk (SQLite ``synchronous=NORMAL``, "
             "PostgreSQL ``synchronous_commit = off`` on ivos's connections); with ``--fsync`` every commit does "
             f"(``FULL``, ``on``). Machine: {env['platform']}, {env['cpus']} CPUs, load "
             f"average at the end {env['loadavg_at_end'][0]:.2f} (a shared machine: absolute times are loaded, "
             "compare within the run).", ""]
    c = result.get("clicks")
    if c:
        d = c["delta_ms_p50"]
        h, f, k = c["http"], c["request_floor"], c["store_calls"]
        lines += ["## Per click", "",
                  f"{h['sqlite']['n']} clicks per server on the shipped {env['model']} at {SIZE[0]}x{SIZE[1]} (one "
                  "session per round, rounds rotating which server goes first), the client's wall time; the "
                  "request floor is ``POST .../undo`` on a session without clicks (routing, two session reads, no "
                  "model):", "",
                  "| server | click p50 (ms) | p90 | request floor p50 (ms) |", "|---|---|---|---|",
                  *(f"| {server_name(n)} | {h[n]['p50']:.1f} | {h[n]['p90']:.1f} | {f[n]['p50']:.2f} |" for n in h),
                  "",
                  f"PostgreSQL - SQLite at p50: **{d['http']:+.1f} ms per click** over HTTP (target: at most +5 ms); "
                  f"{d['request_floor']:+.2f} ms on the request floor.", "",
                  "The store calls of one click alone (the route's session read, the re-read in the session lock, "
                  "the click committed with its 480x854 mask), in process, "
                  f"{k['sqlite']['n']} per store:", "",
                  "| store | p50 (ms) | p90 | p99 |", "|---|---|---|---|",
                  *(f"| {n} | {k[n]['p50']:.2f} | {k[n]['p90']:.2f} | {k[n]['p99']:.2f} |" for n in k),
                  "",
                  f"PostgreSQL - SQLite: {d['store_calls']:+.2f} ms at p50. With ``--fsync`` every PostgreSQL commit "
                  "waits for the WAL on disk (``synchronous_commit = on``), as SQLite's ``synchronous=FULL``.", ""]
    b = result.get("blobs")
    if b:
        lines += ["## A 3000-frame video session's files", "",
                  f"{b['frames']} frames at {b['size'][0]}x{b['size'][1]} (the demo clip upscaled and looped; making "
                  f"them took {b['media_made_s']:.0f} s), one object with a mask on every frame. ``VideoState.save`` "
                  f"{b['state_save_s'] * 1e3:.0f} ms, ``VideoState.load`` {b['state_load_s'] * 1e3:.0f} ms. Write: "
                  "the file made the blob (local: copied in from another folder, where the server only moves its "
                  "upload into place; PostgreSQL: one transaction of 1 MiB chunks; neither waits for the disk, as "
                  "without ``--fsync``). Read: a server without a local copy fetches it (local: nothing to do, "
                  "the file is there). Stored: the file's size, or what the blob tables grew by (with TOAST and "
                  "indexes).", "",
                  "| where | item | file MiB | stored MiB | write (s) | read (s) |", "|---|---|---|---|---|---|",
                  *(f"| {r['store']} | {r['item']} | {mb(r['bytes'])} | {mb(r['stored_bytes'])} | "
                    f"{r['put_s']:.2f} | {r['read_s']:.2f} |" for r in b["rows"]),
                  "",
                  "One video edit (save the state, store it as a new blob, commit the row): " +
                  ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in b["edit_s"].items()) + " (median of 5).", ""]
    r = result.get("restart")
    if r:
        lines += ["## PostgreSQL restarted under load", "",
                  f"``ivos serve --store postgresql://...`` (default ``--store-timeout-s 5``), two loops (image "
                  f"clicks; points on the demo video session), PostgreSQL stopped (``pg_ctl stop -m fast``) for "
                  f"{r['down_s']:.1f} s then started; {r['requests']} requests:", "",
                  "| requests | answers |", "|---|---|",
                  *(f"| {p} | {', '.join(f'{n} x {k}' for k, n in sorted(counts.items()))} |"
                    for p, counts in r["phases"].items()),
                  "",
                  f"Statuses seen: {r['statuses']}; 503 without Retry-After: {r['503_without_retry_after']}. First "
                  f"200 after PostgreSQL was up again: {r['first_200_after_start_s']:.2f} s. The image session holds "
                  f"exactly the {r['image_clicks']} clicks answered 200: {r['image_clicks_match']}; the video "
                  f"session exactly the {r['video_points']} points answered 200: {r['video_points_match']} "
                  "(\"straddling\": sent before the stop finished or answered after the start began).", ""]
    lines += [f"Environment: `{json.dumps(env)}`", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ivos.bench.store", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ivos-lite0", help="click bundle of the servers")
    p.add_argument("--threads", type=int, default=1, help="the servers' engine threads")
    p.add_argument("--rounds", type=int, default=8, help="image sessions per store for the clicks")
    p.add_argument("--clicks", type=int, default=20, help="clicks per session")
    p.add_argument("--frames", type=int, default=FRAMES, help="frames of the video session for the blobs")
    p.add_argument("--before-s", type=float, default=5.0, help="restart: seconds of requests before the stop")
    p.add_argument("--down-s", type=float, default=10.0, help="restart: seconds PostgreSQL stays down")
    p.add_argument("--after-s", type=float, default=10.0, help="restart: seconds of requests after the start")
    p.add_argument("--only", nargs="+", choices=("clicks", "blobs", "restart"), default=["clicks", "blobs", "restart"])
    p.add_argument("--out", type=Path, default=None,
                   help="default benchmarks/results/postgres_store.md; with --replicas-load the section goes "
                        "into benchmarks/results/ray_nodes.md")
    p.add_argument("--replicas-load", action="store_true",
                   help="instead: throughput and click latency of ivos serve on SQLite (1 process) and of "
                        "ivos serve --ray --replicas 1 and 2 on PostgreSQL on a two-node Ray cluster")
    p.add_argument("--sessions", type=int, default=8, help="--replicas-load: concurrent client threads")
    p.add_argument("--load-clicks", type=int, default=5, help="--replicas-load: clicks per session")
    args = p.parse_args(argv)
    if args.replicas_load:
        args.only = ["replicas"]
    args.out = args.out or Path("benchmarks/results/ray_nodes.md" if args.replicas_load
                                else "benchmarks/results/postgres_store.md")

    model_args = ["--model", args.model, "--threads", str(args.threads), "--log-level", "warning"]
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp_name, PostgresServer(tcp=True, durable=True) as pg:
        tmp = Path(tmp_name)
        import psycopg

        with psycopg.connect(pg.url()) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        if "clicks" in args.only:
            result["clicks"] = bench_clicks(args, pg, tmp, model_args)
        if "blobs" in args.only:
            result["blobs"] = bench_blobs(args, pg, tmp)
        if "restart" in args.only:
            result["restart"] = bench_restart(args, pg, tmp, model_args)
        if "replicas" in args.only:
            result["replicas"] = bench_replicas(args, pg, tmp, model_args)
        shutil.rmtree(tmp, ignore_errors=True)
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "ivos": ivos.__version__, "postgres": version, "model": args.model, "threads": args.threads,
           "loadavg_at_end": os.getloadavg()}
    result["environment"] = env
    command = "python -m ivos.bench.store " + " ".join(argv if argv is not None else sys.argv[1:])
    if "replicas" in result:
        lines = replicas_report(command, env, args, result["replicas"])
        write_section(args.out, lines)
        print("\n".join(lines))
        print(json.dumps(result["replicas"], indent=1))
        return 0
    lines = report(command, env, result)
    write_report(markdown=(args.out, "\n".join(lines)), json_data=(args.out.with_suffix(".json"), result))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
