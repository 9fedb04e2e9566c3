"""The session store and the session blobs on their own, the same tests on both stores
(``SQLiteStore``, ``PostgresStore`` on a throw-away PostgreSQL server) and both blob kinds
(``LocalBlobs``, ``PostgresBlobs``): rev-checked writes (a stale rev is a ``Conflict``, and of
writers racing on one rev exactly one wins), one live job per session, listings; blobs put,
read, streamed, listed, copied locally and deleted, a failed put leaving nothing.
test_postgres.py has what only PostgreSQL does (reconnects, restarts, migrations)."""
from __future__ import annotations

import io
import threading
import time

import pytest

from ivos.serve.blobs import BlobNotFound, LocalBlobs, atomic_copy
from ivos.serve.store import Busy, ClickRecord, Conflict, JobRecord, SessionRecord, SQLiteStore

SID = "img_" + "a" * 24


@pytest.fixture
def store(store_url, tmp_path):
    """A new, empty store of this module's kind."""
    if store_url:
        from ivos.serve.store_postgres import PostgresStore

        made = PostgresStore(store_url, timeout_s=5)
    else:
        made = SQLiteStore(tmp_path / "sessions.sqlite3")
    yield made
    made.close()


@pytest.fixture
def blobs(store, tmp_path):
    """The blobs that go with ``store``; PostgreSQL's with 1000-byte chunks (many per blob)."""
    if isinstance(store, SQLiteStore):
        yield LocalBlobs(tmp_path / "blobs")
    else:
        from ivos.serve.store_postgres import PostgresBlobs

        yield PostgresBlobs(store.db, tmp_path / "copies", chunk=1000)


def session(sid=SID, owner="", kind="image", updated=None):
    now = time.time() if updated is None else updated
    return SessionRecord(sid, kind, owner, now, now, 0, 64, 48, media=f"sessions/{sid}/image.png")


def click(seq):
    return ClickRecord(seq, float(seq), 2.0, seq % 2 == 1, {"size": [48, 64], "counts": [seq, 3072 - seq]},
                       {"total_ms": 1.5})


def job(job_id, sid=SID, *, beat=None, instance="inst_a"):
    now = time.time() if beat is None else beat
    return JobRecord(job_id, sid, "propagate", "queued", "queued", 0, 10, None, None, {"finetune": True}, now, now,
                     now, instance, False)


def test_writes_are_rev_checked(store):
    store.create_session(session())
    assert store.get_session(SID).rev == 0
    assert store.add_click(SID, 0, click(1)) == 1
    with pytest.raises(Conflict):
        store.add_click(SID, 0, click(2))  # stale: another request wrote rev 1
    assert store.add_click(SID, 1, click(2)) == 2
    assert [c.seq for c in store.clicks(SID)] == [1, 2]
    assert store.clicks(SID)[0] == click(1)
    for stale in (lambda: store.pop_click(SID, 1), lambda: store.clear_clicks(SID, 0),
                  lambda: store.set_state(SID, 1, "sessions/x/state.ivs")):
        with pytest.raises(Conflict):
            stale()
    assert store.pop_click(SID, 2) == 3 and [c.seq for c in store.clicks(SID)] == [1]
    assert store.clear_clicks(SID, 3, media="sessions/x/image-4.png", width=50, height=30) == 4
    rec = store.get_session(SID)
    assert (rec.rev, rec.media, rec.width, rec.height, store.clicks(SID)) == (4, "sessions/x/image-4.png", 50, 30, [])
    assert store.set_state(SID, 4, "sessions/x/state-5.ivs", meta={"k": 1}) == 5
    assert store.get_session(SID).state_file == "sessions/x/state-5.ivs" and store.get_session(SID).meta == {"k": 1}
    assert store.delete_session(SID) and store.get_session(SID) is None and not store.delete_session(SID)
    with pytest.raises(Conflict):
        store.add_click(SID, 5, click(3))  # gone


def test_racing_writers_exactly_one_wins(store):
    """8 threads write the same rev at once: one commits, seven get Conflict, nothing else."""
    store.create_session(session())
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def write(i):
        barrier.wait()
        try:
            store.add_click(SID, 0, click(1 + i))
            outcomes.append("won")
        except Conflict:
            outcomes.append("conflict")
        finally:
            if isinstance(store, SQLiteStore):
                store.close()  # this thread's connection

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    assert store.get_session(SID).rev == 1 and len(store.clicks(SID)) == 1


def test_one_live_job_per_session(store):
    store.create_session(session())
    store.create_job(job("job_1"), stale_s=30)
    with pytest.raises(Busy) as e:
        store.create_job(job("job_2"), stale_s=30)
    assert e.value.job_id == "job_1"
    assert store.live_job(SID, stale_s=30).id == "job_1"
    store.update_job("job_1", status="running", stage="propagate", done=3, frame_idx=2, frames_done=3, cancel=1)
    running = store.get_job("job_1")
    assert (running.status, running.done, running.frame_idx, running.cancel) == ("running", 3, 2, True)
    store.update_job("job_1", status="done")
    assert store.live_job(SID, stale_s=30) is None and store.last_job(SID).status == "done"
    # a job whose process died (no heartbeat for longer than stale_s) gives way
    other = "vid_" + "b" * 24
    store.create_session(session(other, kind="video"))
    store.create_job(job("job_3", other, beat=time.time() - 100, instance="inst_b"), stale_s=30)
    assert store.live_job(other, stale_s=30) is None
    store.create_job(job("job_4", other), stale_s=30)
    assert store.get_job("job_3").status == "interrupted" and store.last_job(other).id == "job_4"
    store.beat("inst_a")
    assert store.interrupt_jobs(older_than=time.time() - 60) == 0  # beaten just now
    assert store.interrupt_jobs() == 1
    assert store.jobs_by_status() == {"done": 1, "interrupted": 2}
    with pytest.raises(Conflict):
        store.create_job(job("job_5", sid="vid_" + "z" * 24), stale_s=30)  # no such session


def test_take_over_dead_jobs(store):
    """``take_over_jobs``: a dead server's live jobs (old heartbeat) become the caller's again,
    oldest first, up to ``limit`` and each at most ``max_resumes`` times; the others are
    interrupted, one asked to cancel is cancelled; a beating job is left alone, and a job just
    taken over is not taken again."""
    import dataclasses

    old = time.time() - 100
    sids = [f"vid_{c * 24}" for c in "cdefg"]
    for sid in sids:
        store.create_session(session(sid, kind="video"))
    dead = dict(beat=old, instance="inst_dead")
    store.create_job(job("job_live", sids[0]), stale_s=30)
    store.create_job(job("job_a", sids[1], **dead), stale_s=30)
    store.create_job(job("job_b", sids[2], beat=old - 1, instance="inst_dead"), stale_s=30)
    store.create_job(dataclasses.replace(job("job_c", sids[3], **dead), cancel=True), stale_s=30)
    store.create_job(dataclasses.replace(job("job_d", sids[4], **dead), params={"finetune": True, "resumed": 2}),
                     stale_s=30)
    taken = store.take_over_jobs("inst_me", older_than=time.time() - 60, limit=1, max_resumes=2)
    assert [j.id for j in taken] == ["job_b"]
    b = store.get_job("job_b")
    assert (b.status, b.stage, b.instance, b.params) == ("queued", "queued", "inst_me", {"finetune": True, "resumed": 1})
    a, c, d = (store.get_job(j) for j in ("job_a", "job_c", "job_d"))
    assert a.status == "interrupted" and "no free job slot" in a.error
    assert c.status == "cancelled"
    assert d.status == "interrupted" and "2 times" in d.error
    assert store.get_job("job_live").status == "queued" and store.get_job("job_live").instance == "inst_a"
    assert store.take_over_jobs("inst_other", older_than=time.time() - 60, limit=5, max_resumes=2) == []


def test_listings(store):
    t = time.time()
    store.create_session(session("img_" + "1" * 24, owner="alice", updated=t - 30))
    store.create_session(session("vid_" + "2" * 24, owner="alice", kind="video", updated=t - 20))
    store.create_session(session("img_" + "3" * 24, owner="bob", updated=t - 10))
    assert [r.id[:5] for r in store.list_sessions("alice")] == ["vid_2", "img_1"]
    assert [r.id[:5] for r in store.list_sessions("alice", "image")] == ["img_1"]
    assert store.count_sessions() == {"image": 2, "video": 1}
    assert store.session_ids() == {"img_" + "1" * 24, "vid_" + "2" * 24, "img_" + "3" * 24}
    store.create_job(job("job_x", sid="vid_" + "2" * 24), stale_s=30)
    assert sorted(store.idle_sessions(t - 5)) == ["img_" + "1" * 24, "img_" + "3" * 24]  # not the one with a job


def test_blobs(blobs, tmp_path):
    data = bytes(range(256)) * 17  # 4352 bytes: five chunks of PostgresBlobs' 1000
    blobs.put("sessions/s1/a.bin", data)
    assert blobs.get("sessions/s1/a.bin") == data
    with blobs.open("sessions/s1/a.bin") as f:  # streamed
        assert f.read(10) == data[:10] and f.read() == data[10:]
    assert blobs.exists("sessions/s1/a.bin") and not blobs.exists("sessions/s1/b.bin")
    with pytest.raises(BlobNotFound):
        blobs.open("sessions/s1/b.bin")
    source = tmp_path / "source.bin"
    source.write_bytes(data[::-1])
    blobs.put_file("sessions/s1/c.bin", source)
    assert blobs.fetch("sessions/s1/c.bin").read_bytes() == data[::-1]  # a local path
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        (frames / f"{i:05d}.png").write_bytes(bytes([i]) * (1500 + i))
    blobs.put_tree("sessions/s1/frames", frames)
    assert [b.key for b in blobs.list("sessions/s1/")] == ["sessions/s1/a.bin", "sessions/s1/c.bin",
                                                           "sessions/s1/frames/00000.png",
                                                           "sessions/s1/frames/00001.png",
                                                           "sessions/s1/frames/00002.png"]
    assert [b.size for b in blobs.list("sessions/s1/frames/")] == [1500, 1501, 1502]
    blobs.forget("sessions/s1/frames")  # a copy gone: fetched again
    folder = blobs.fetch("sessions/s1/frames")
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert (folder / "00002.png").read_bytes() == bytes([2]) * 1502
    blobs.put("sessions/s2/a.bin", b"other")
    assert blobs.list("sessions/s1") and blobs.list("sessions/s2/") and not blobs.list("sessions/s3/")
    blobs.delete("sessions/s1")  # the key and everything under it
    assert not blobs.list("sessions/s1/") and blobs.get("sessions/s2/a.bin") == b"other"
    assert not blobs.path("sessions/s1").exists()
    with pytest.raises(ValueError):
        blobs.put("sessions/../etc/x", b"")


class Broken(io.RawIOBase):
    """A file that fails after ``good`` bytes."""

    def __init__(self, good):
        self.left = good

    def readable(self):
        return True

    def readinto(self, b):
        if self.left <= 0:
            raise OSError("disk gone")
        n = min(len(b), self.left, 700)
        b[:n] = b"x" * n
        self.left -= n
        return n

    def seek(self, *_):
        return 0


def test_a_failed_put_leaves_nothing(blobs):
    """A write that fails half-way leaves no blob, not a partial one (nor the old one changed)."""
    blobs.put("sessions/s1/a.bin", b"before")
    if isinstance(blobs, LocalBlobs):
        with pytest.raises(OSError):
            atomic_copy(io.BufferedReader(Broken(2500)), blobs.path("sessions/s1/b.bin"))
        with pytest.raises(OSError):
            atomic_copy(io.BufferedReader(Broken(2500)), blobs.path("sessions/s1/a.bin"))
    else:
        with pytest.raises(OSError):
            blobs.db.write(lambda c: blobs._insert(c, "sessions/s1/b.bin", Broken(2500)))
        with pytest.raises(OSError):
            blobs.db.write(lambda c: blobs._insert(c, "sessions/s1/a.bin", Broken(2500)))
    assert [b.key for b in blobs.list("sessions/")] == ["sessions/s1/a.bin"]
    assert blobs.get("sessions/s1/a.bin") == b"before"


def test_label_studio_projects_are_shared_blobs(blobs, tmp_path):
    """``ProjectBook`` keeps a project's Label Studio in the blobs: a second server (another
    book on the same store) reads it, sees a newer /setup, and an old projects.json is copied in."""
    import json

    from ivos.serve.label_studio import Project, ProjectBook

    a, b = ProjectBook(blobs), ProjectBook(blobs)
    b.FRESH_S = 0.0
    assert b.get("7") is None
    a.remember("7", "http://ls:8080", "tok-1")
    assert b.get("7") == Project("http://ls:8080", "tok-1")
    a.remember("7", "http://ls:8080", "tok-2")
    assert b.get("7") == Project("http://ls:8080", "tok-2")
    assert len(blobs.list("label-studio/projects/7/")) == 1  # the older one deleted
    legacy = tmp_path / "projects.json"
    legacy.write_text(json.dumps({"9": {"hostname": "http://old:8080", "token": None}}))
    assert ProjectBook(blobs, legacy=legacy).get("9") == Project("http://old:8080", None)
    assert b.get("9") == Project("http://old:8080", None)
