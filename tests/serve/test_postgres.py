"""The PostgreSQL store under failure, through the app (in process, a real PostgreSQL started
with ``initdb``/``pg_ctl``, ``ivos.serve.testing.PostgresServer``): connections the database
drops are retried without the client noticing; while the database is down every request
answers 503 ``store_unavailable`` with ``Retry-After`` and nothing is half-written, and once it
is back every request succeeds; a propagation job outlives a restart; the schema migrates on
start; ``ivos serve --store`` refuses a bad URL and an unreachable database, saying so.

benchmarks/store.py runs the restart against a real server process and records its counts
(benchmarks/results/postgres_store.md)."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import anyio
import numpy as np
import pytest

from ivos.serve.testing import PostgresServer, in_process

pytestmark = pytest.mark.anyio

SID = "img_" + "a" * 24


@pytest.fixture(scope="module")
def store_kind(request):
    """PostgreSQL only (skips where PostgreSQL is not installed)."""
    request.getfixturevalue("postgres_server")
    return "postgresql"


@pytest.fixture
def own_postgres(postgres_server):
    """A PostgreSQL server of this test alone (it gets restarted); skips with ``postgres_server``."""
    server = PostgresServer().start()
    yield server
    server.close()


def scene(h=48, w=64):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    image[12:36, 16:44] = (220, 140, 30)
    return image


def terminate_backends(url: str) -> int:
    """Closes, from the server side, every connection of ``ivos serve`` (as a failover, a
    pooler or a network blip would)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = 'ivos serve'").fetchall()
    return len(rows)


async def test_dropped_connections_are_retried(serve_config, store_url, png_bytes, make_clip):
    async with in_process(serve_config(store_timeout_s=3)) as srv:
        http = srv.http
        sid = (await http.post("/v1/images", files={"image": ("a.png", png_bytes(scene()), "image/png")})
               ).json()["session_id"]
        frames, _ = make_clip(n=3)
        files = [("frames", (f"{i}.png", png_bytes(f), "image/png")) for i, f in enumerate(frames)]
        vid = (await http.post("/v1/videos", files=files)).json()["session_id"]
        assert (await http.post(f"/v1/images/{sid}/clicks", json={"x": 20, "y": 20})).status_code == 200
        for round_ in range(3):
            assert terminate_backends(store_url) >= 1
            r = await http.post(f"/v1/images/{sid}/clicks", json={"x": 30, "y": 20 + round_})
            assert r.status_code == 200, r.text
            r = await http.post(f"/v1/videos/{vid}/points", json={"frame_idx": 0, "points": [[10, 10 + round_]],
                                                                   "labels": [1]})
            assert r.status_code == 200, r.text
        assert len((await http.get(f"/v1/images/{sid}")).json()["clicks"]) == 4
        assert (await http.get(f"/v1/videos/{vid}")).json()["objects"][0]["clicks"]["0"] == [
            [10.0, 10.0, 1], [10.0, 11.0, 1], [10.0, 12.0, 1]]


async def test_requests_during_a_restart_fail_cleanly(own_postgres, serve_config, png_bytes, make_clip):
    """Clicks on an image session and points on a video session, one after the other in two
    loops, while the database stops for 3 s and starts again: each answer is 200 or 503
    ``store_unavailable`` with Retry-After; the requests that ended while it was down are all
    503, those that started 3 s after it was back all 200; afterwards each session holds
    exactly the changes that were answered 200, in order (nothing half-written, nothing lost)."""
    url = own_postgres.create_database()
    config = serve_config(store=url, store_timeout_s=1.0, request_threads=2)
    marks: dict[str, float] = {}  # when the database was stopping, had stopped, was starting, had started
    log: list[tuple[str, float, float, int, dict]] = []  # (loop, start, end, status, error or body)

    async with in_process(config) as srv:
        http = srv.http
        sid = (await http.post("/v1/images", files={"image": ("a.png", png_bytes(scene()), "image/png")})
               ).json()["session_id"]
        frames, _ = make_clip(n=4)
        files = [("frames", (f"{i}.png", png_bytes(f), "image/png")) for i, f in enumerate(frames)]
        vid = (await http.post("/v1/videos", files=files)).json()["session_id"]
        stop = anyio.Event()
        clicks_ok: list[tuple[float, float]] = []
        points_ok: list[tuple[int, list[float]]] = []

        async def loop(name, request):
            for i in range(2000):  # bounded
                if stop.is_set():
                    return
                t0 = time.monotonic()
                r, ok = await request(i)
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                log.append((name, t0, time.monotonic(), r.status_code, body.get("error", {})))
                if r.status_code == 200:
                    ok()
                else:
                    assert r.status_code == 503 and r.headers.get("retry-after"), (r.status_code, r.text)
                    await anyio.sleep(0.05)

        async def click(i):
            x, y = 5.0 + i % 50, 5.0 + (i // 50) % 40
            return await http.post(f"/v1/images/{sid}/clicks", json={"x": x, "y": y}), \
                lambda: clicks_ok.append((x, y))

        async def points(i):
            frame, point = i % 4, [float(1 + i % 50), float(1 + (i // 50) % 38)]
            return await http.post(f"/v1/videos/{vid}/points", json={"frame_idx": frame, "points": [point],
                                                                    "labels": [1]}), \
                lambda: points_ok.append((frame, point))

        async def restart():
            await anyio.sleep(1.5)
            marks["stopping"] = time.monotonic()
            await anyio.to_thread.run_sync(own_postgres.stop, "fast")
            marks["stopped"] = time.monotonic()
            await anyio.sleep(3.0)
            marks["starting"] = time.monotonic()
            await anyio.to_thread.run_sync(own_postgres.start)
            marks["started"] = time.monotonic()
            await anyio.sleep(5.0)
            stop.set()

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(loop, "click", click)
                tg.start_soon(loop, "points", points)
                tg.start_soon(restart)

        image = (await http.get(f"/v1/images/{sid}")).json()
        video = (await http.get(f"/v1/videos/{vid}")).json()

    statuses = [status for *_, status, _ in log]
    during = [e for _, t0, t1, status, e in log if t0 >= marks["stopped"] and t1 <= marks["starting"]]
    after = [status for _, t0, _, status, _ in log if t0 >= marks["started"] + 3.0]
    before = [status for _, _, t1, status, _ in log if t1 <= marks["stopping"]]
    print(f"before: {len(before)} requests, {before.count(200)} x 200; down 3 s: {len(during)} requests, all 503; "
          f"back: {len(after)} requests from 3 s on, all 200; in all {statuses.count(200)} x 200, "
          f"{statuses.count(503)} x 503")
    assert set(statuses) <= {200, 503}
    assert before and set(before) == {200}
    assert during and all(e.get("code") == "store_unavailable" and e.get("in_doubt") is False for e in during)
    assert after and set(after) == {200}
    assert all(e.get("code") == "store_unavailable" for *_, status, e in log if status == 503)
    # exactly what was answered 200, in order
    assert [(c["x"], c["y"]) for c in image["clicks"]] == clicks_ok
    stored = video["objects"][0]["clicks"]
    for frame in range(4):
        assert [[x, y] for x, y, _ in stored.get(str(frame), [])] == [p for f, p in points_ok if f == frame]


async def test_a_job_outlives_a_restart(own_postgres, serve_config, png_bytes, make_clip):
    """A propagation job running while the database restarts goes on (its progress writes and
    checkpoints wait) and ends ``done`` with every frame's mask stored."""
    url = own_postgres.create_database()
    n = 40
    frames, _ = make_clip(n=n, h=60, w=80)
    async with in_process(serve_config(store=url, store_timeout_s=1.0, checkpoint_s=0.2)) as srv:
        http = srv.http
        files = [("frames", (f"{i}.png", png_bytes(f), "image/png")) for i, f in enumerate(frames)]
        vid = (await http.post("/v1/videos", files=files)).json()["session_id"]
        await http.post(f"/v1/videos/{vid}/points", json={"frame_idx": 0, "points": [[15, 17]], "labels": [1]})
        job = (await http.post(f"/v1/videos/{vid}/propagate", json={})).json()
        with anyio.fail_after(120):
            while (await http.get(f"/v1/videos/{vid}/jobs/{job['job_id']}")).json()["stage"] != "propagate":
                await anyio.sleep(0.05)
            await anyio.to_thread.run_sync(own_postgres.stop, "fast")
            await anyio.sleep(2.5)
            await anyio.to_thread.run_sync(own_postgres.start)
            while True:
                r = await http.get(f"/v1/videos/{vid}/jobs/{job['job_id']}")
                if r.status_code == 200 and r.json()["status"] not in ("queued", "running"):
                    break
                await anyio.sleep(0.2)
        assert r.json()["status"] == "done", r.json()
        assert (await http.get(f"/v1/videos/{vid}")).json()["objects"][0]["masked_frames"] == n


async def test_a_dead_servers_job_shows_interrupted(serve_config, png_bytes, make_clip):
    """A job left "running" by a server that died (another machine: its heartbeat stops) is
    marked interrupted by any live server's heartbeat once it is ``job_stale_s`` old, and the
    session takes a new job."""
    import time as clock

    from ivos.serve.store import JobRecord

    async with in_process(serve_config(job_stale_s=1.0)) as srv:
        http = srv.http
        frames, _ = make_clip(n=3)
        files = [("frames", (f"{i}.png", png_bytes(f), "image/png")) for i, f in enumerate(frames)]
        vid = (await http.post("/v1/videos", files=files)).json()["session_id"]
        await http.post(f"/v1/videos/{vid}/points", json={"frame_idx": 0, "points": [[15, 17]], "labels": [1]})
        now = clock.time()
        srv.app.state.service.store.create_job(
            JobRecord("job_" + "d" * 24, vid, "propagate", "running", "propagate", 1, 3, 0, None, {}, now, now, now,
                      "inst_dead", False), stale_s=30)
        with anyio.fail_after(30):
            while (await http.get(f"/v1/videos/{vid}")).json()["job"]["status"] != "interrupted":
                await anyio.sleep(0.5)
        r = await http.post(f"/v1/videos/{vid}/propagate", json={})
        assert r.status_code == 202, r.text


def test_schema_migrates_on_start(store_url):
    """A database at schema version 1 is migrated to the current version on start (its rows
    kept); three servers starting at once migrate once; a database newer than this ivos is
    refused."""
    import psycopg

    from ivos.serve.store_postgres import MIGRATIONS, SCHEMA_VERSION, PostgresStore

    with psycopg.connect(store_url, autocommit=True) as conn:
        with conn.transaction():
            for statement in MIGRATIONS[1]:
                conn.execute(statement)
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (1)")
            conn.execute("INSERT INTO sessions (id, kind, owner, created, updated, rev, width, height, num_frames, fps, "
                         "media) VALUES (%s, 'image', '', 0, 0, 7, 4, 3, 1, 0, 'm')", (SID,))
    stores, errors = [], []

    def start():
        try:
            stores.append(PostgresStore(store_url, timeout_s=5))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(stores) == 3
    assert stores[0].get_session(SID).rev == 7
    assert stores[0].db.read(lambda c: c.execute("SELECT to_regclass('blob_chunks')").fetchone()[0]) == "blob_chunks"
    with psycopg.connect(store_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
        conn.commit()
    for s in stores:
        s.close()
    with pytest.raises(RuntimeError, match="upgrade ivos"):
        PostgresStore(store_url, timeout_s=5)


def test_cli_refuses_a_bad_store(tmp_path):
    def serve(*args):
        return subprocess.run([sys.executable, "-m", "ivos.serve.cli", "--data-dir", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=120)

    r = serve("--store", "mysql://user:secret@db/x")
    assert r.returncode == 2 and "--store must be a postgresql://" in r.stderr and "secret" not in r.stderr
    t0 = time.monotonic()
    r = serve("--store", "postgresql://ivos:secret@127.0.0.1:1/nothing", "--store-timeout-s", "0.5")
    assert r.returncode == 2 and "cannot connect to the PostgreSQL store" in r.stderr, r.stderr[-2000:]
    assert "secret" not in r.stderr and time.monotonic() - t0 < 60
