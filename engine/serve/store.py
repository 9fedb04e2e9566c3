"""The session store: what survives a restart, behind a small interface (``SessionStore``) with
an embedded SQLite implementation (``SQLiteStore``).

What it holds (every write one transaction, so a crash never leaves a half-written session):

* ``sessions``: id, kind ("image" / "video"), owner (SHA-256 of the API key, "" without
  keys), sizes, the media file(s) under the data dir, the current video state file, and
  ``rev``, bumped by every change. Writers pass the ``rev`` they read and the write fails
  with ``Conflict`` when another request (another worker process, another Ray replica)
  changed the session in between: optimistic concurrency, so several processes can share one
  store without a lock server.
* ``image_clicks``: an image session's clicks in order, each with the mask it produced (COCO
  RLE JSON) and its timings: undo drops the last row, the previous mask is the row before.
* ``jobs``: background jobs (propagation) with status, progress, heartbeat and a cancel flag;
  at most one live job per session (checked inside the inserting transaction).

Big data lives in blobs (``ivos.serve.blobs``; files next to the store, ``sessions/<id>/``,
by default): the uploaded image or video, and video states written by ``ivos.VideoState.save``;
the store records which state blob is current in the same transaction that bumps ``rev``, so a
crash between writing a blob and committing leaves the previous, complete state current (the
orphan blob is removed by the next sweep).

SQLite (WAL mode) serves every process of one machine; ``ivos.serve.store_postgres`` implements
the same interface on PostgreSQL, for sessions shared across machines (``--store
postgresql://...``).
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIVE_JOB_STATES = ("queued", "running")
FINAL_JOB_STATES = ("done", "failed", "cancelled", "interrupted")


class Conflict(Exception):
    """The session changed since it was read (``rev`` moved on) or was deleted."""


class Busy(Exception):
    """The session already has a live job; ``job_id`` names it."""

    def __init__(self, job_id: str):
        super().__init__(job_id)
        self.job_id = job_id


class StoreUnavailable(Exception):
    """The store did not answer in time (a server database down, restarting or unreachable;
    ``ivos.serve.store_postgres``): answered 503 with ``Retry-After``. The operation changed
    nothing, unless ``in_doubt``: the connection broke while its commit was on the way, so it
    may have been saved (a client should re-read before repeating it)."""

    def __init__(self, message: str, *, in_doubt: bool = False, retry_after: int = 2):
        super().__init__(message)
        self.in_doubt = in_doubt
        self.retry_after = retry_after


@dataclass(frozen=True)
class SessionRecord:
    """One session's row. ``media``: its upload, relative to the data dir (an image file, a
    video file or a folder of frames); ``state_file``: the current video state (relative;
    None for images and before the first save); ``rev``: bumped by every change."""

    id: str
    kind: str
    owner: str
    created: float
    updated: float
    rev: int
    width: int
    height: int
    num_frames: int = 1
    fps: float = 0.0
    media: str = ""
    state_file: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClickRecord:
    """One click of an image session: (x, y) original pixels, positive, the mask it produced
    (COCO uncompressed RLE dict) and its timings (ms per stage)."""

    seq: int
    x: float
    y: float
    positive: bool
    mask_rle: dict
    timings: dict


@dataclass(frozen=True)
class JobRecord:
    """A background job. ``status`` in queued/running/done/failed/cancelled/interrupted;
    ``stage`` e.g. "finetune" / "propagate"; ``done``/``total`` the stage's progress;
    ``frame_idx`` the last frame finished; ``heartbeat`` the last sign of life (epoch s)."""

    id: str
    session_id: str
    kind: str
    status: str
    stage: str
    done: int
    total: int
    frame_idx: int | None
    error: str | None
    params: dict
    created: float
    updated: float
    heartbeat: float
    instance: str
    cancel: bool
    frames_done: int = 0


class SessionStore(ABC):
    """What the server needs from a store. Every method is one transaction; methods taking
    ``rev`` raise ``Conflict`` when the session's rev differs (or it is gone) and return the new
    rev."""

    @abstractmethod
    def create_session(self, record: SessionRecord) -> None: ...

    @abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abstractmethod
    def delete_session(self, session_id: str) -> bool: ...

    @abstractmethod
    def count_sessions(self) -> dict[str, int]: ...

    @abstractmethod
    def list_sessions(self, owner: str, kind: str | None = None, limit: int = 100) -> list[SessionRecord]: ...

    @abstractmethod
    def idle_sessions(self, before: float) -> list[str]: ...

    @abstractmethod
    def session_ids(self) -> set[str]: ...

    # image sessions
    @abstractmethod
    def clicks(self, session_id: str) -> list[ClickRecord]: ...

    @abstractmethod
    def add_click(self, session_id: str, rev: int, click: ClickRecord) -> int: ...

    @abstractmethod
    def pop_click(self, session_id: str, rev: int) -> int: ...

    @abstractmethod
    def clear_clicks(self, session_id: str, rev: int, **changes: Any) -> int: ...

    # video sessions
    @abstractmethod
    def set_state(self, session_id: str, rev: int, state_file: str, meta: dict | None = None) -> int: ...

    # jobs
    @abstractmethod
    def create_job(self, job: JobRecord, *, stale_s: float) -> None: ...

    @abstractmethod
    def get_job(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    def live_job(self, session_id: str, *, stale_s: float) -> JobRecord | None: ...

    @abstractmethod
    def update_job(self, job_id: str, **fields: Any) -> None: ...

    @abstractmethod
    def interrupt_jobs(self, *, older_than: float | None = None) -> int: ...

    @abstractmethod
    def take_over_jobs(self, instance: str, *, older_than: float, limit: int, max_resumes: int) -> list[JobRecord]:
        """Takes over the live jobs whose heartbeat is older than ``older_than`` (their server
        died), in one transaction: up to ``limit`` of them become ``instance``'s again ("queued",
        ``params["resumed"]`` + 1), returned for it to run; those resumed ``max_resumes`` times
        already or beyond ``limit`` are marked interrupted, those with a cancel request
        cancelled. Two servers never take the same job."""

    @abstractmethod
    def beat(self, instance: str) -> None: ...

    @abstractmethod
    def last_job(self, session_id: str) -> JobRecord | None: ...

    @abstractmethod
    def jobs_by_status(self) -> dict[str, int]: ...

    def close(self) -> None:
        """Releases connections (the store may not be used afterwards)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL, created REAL NOT NULL,
    updated REAL NOT NULL, rev INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    num_frames INTEGER NOT NULL, fps REAL NOT NULL, media TEXT NOT NULL, state_file TEXT,
    meta TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS image_clicks (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
    x REAL NOT NULL, y REAL NOT NULL, positive INTEGER NOT NULL, mask TEXT NOT NULL, timings TEXT NOT NULL,
    PRIMARY KEY (session_id, seq));
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    kind TEXT NOT NULL, status TEXT NOT NULL, stage TEXT NOT NULL, done INTEGER NOT NULL,
    total INTEGER NOT NULL, frame_idx INTEGER, error TEXT, params TEXT NOT NULL, created REAL NOT NULL,
    updated REAL NOT NULL, heartbeat REAL NOT NULL, instance TEXT NOT NULL, cancel INTEGER NOT NULL,
    frames_done INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_by_session ON jobs(session_id, status);
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
"""
SCHEMA_VERSION = 1


class SQLiteStore(SessionStore):
    """``SessionStore`` in one SQLite file, WAL journal. One connection per thread; writes run
    in ``BEGIN IMMEDIATE`` transactions, which SQLite serialises across processes.

    Durability: every commit is atomic and survives a crash of the server process (SIGKILL
    included) in both modes. ``fsync=False`` (default, SQLite's ``synchronous=NORMAL``) does not
    wait for the disk at each commit: a power cut or kernel crash can lose the last commits
    (never corrupt the store); it saves about 4-7 ms a click on this machine's disk.
    ``fsync=True`` (``synchronous=FULL``, ``ivos serve --fsync``) also survives those."""

    def __init__(self, path: str | Path, *, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._write() as db:  # one transaction: several processes may start at once
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise RuntimeError(f"store {self.path} has schema version {row[0]}, newer than this ivos "
                                   f"({SCHEMA_VERSION}): upgrade ivos")

    # ---- connections ---------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # autocommit mode (isolation_level=None): transactions are explicit, below
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection):
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _write(self) -> "SQLiteStore._Tx":
        return SQLiteStore._Tx(self._db())

    def _bump(self, db: sqlite3.Connection, session_id: str, rev: int, **changes: Any) -> int:
        """Inside a transaction: rev -> rev + 1 (plus ``changes``), or Conflict."""
        sets = "".join(f", {k} = ?" for k in changes)
        cur = db.execute(f"UPDATE sessions SET rev = rev + 1, updated = ?{sets} WHERE id = ? AND rev = ?",
                         (time.time(), *changes.values(), session_id, rev))
        if cur.rowcount != 1:
            raise Conflict(session_id)
        return rev + 1

    # ---- sessions ------------------------------------------------------------------------
    def create_session(self, record: SessionRecord) -> None:
        with self._write() as db:
            db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (record.id, record.kind, record.owner, record.created, record.updated, record.rev,
                        record.width, record.height, record.num_frames, record.fps, record.media,
                        record.state_file, json.dumps(record.meta)))

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self._db().execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            return None
        *head, meta = row
        return SessionRecord(*head, meta=json.loads(meta))

    def delete_session(self, session_id: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 1

    def count_sessions(self) -> dict[str, int]:
        rows = self._db().execute("SELECT kind, COUNT(*) FROM sessions GROUP BY kind").fetchall()
        return {"image": 0, "video": 0, **dict(rows)}

    def list_sessions(self, owner: str, kind: str | None = None, limit: int = 100) -> list[SessionRecord]:
        """``owner``'s sessions (of ``kind``), most recently changed first."""
        cond, args = ("AND kind = ?", (kind,)) if kind else ("", ())
        rows = self._db().execute(f"SELECT * FROM sessions WHERE owner = ? {cond} ORDER BY updated DESC LIMIT ?",
                                  (owner, *args, limit)).fetchall()
        return [SessionRecord(*head, meta=json.loads(meta)) for *head, meta in rows]

    def idle_sessions(self, before: float) -> list[str]:
        """Sessions unchanged since ``before`` (epoch s) without a queued or running job."""
        return [r[0] for r in self._db().execute(
            "SELECT id FROM sessions WHERE updated < ? AND id NOT IN (SELECT session_id FROM jobs WHERE status IN "
            "('queued', 'running'))", (before,))]

    def session_ids(self) -> set[str]:
        return {r[0] for r in self._db().execute("SELECT id FROM sessions")}

    # ---- image sessions ------------------------------------------------------------------
    def clicks(self, session_id: str) -> list[ClickRecord]:
        rows = self._db().execute("SELECT seq, x, y, positive, mask, timings FROM image_clicks WHERE session_id = ? "
                                  "ORDER BY seq", (session_id,)).fetchall()
        return [ClickRecord(seq, x, y, bool(p), json.loads(m), json.loads(t)) for seq, x, y, p, m, t in rows]

    def add_click(self, session_id: str, rev: int, click: ClickRecord) -> int:
        with self._write() as db:
            new = self._bump(db, session_id, rev)
            db.execute("INSERT INTO image_clicks VALUES (?,?,?,?,?,?,?)",
                       (session_id, click.seq, click.x, click.y, int(click.positive), json.dumps(click.mask_rle),
                        json.dumps(click.timings)))
            return new

    def pop_click(self, session_id: str, rev: int) -> int:
        with self._write() as db:
            new = self._bump(db, session_id, rev)
            db.execute("DELETE FROM image_clicks WHERE session_id = ? AND seq = (SELECT MAX(seq) FROM image_clicks "
                       "WHERE session_id = ?)", (session_id, session_id))
            return new

    def clear_clicks(self, session_id: str, rev: int, **changes: Any) -> int:
        """Drops every click; ``changes`` (e.g. a new media, width, height) in the same
        transaction."""
        with self._write() as db:
            new = self._bump(db, session_id, rev, **changes)
            db.execute("DELETE FROM image_clicks WHERE session_id = ?", (session_id,))
            return new

    # ---- video sessions ------------------------------------------------------------------
    def set_state(self, session_id: str, rev: int, state_file: str, meta: dict | None = None) -> int:
        with self._write() as db:
            changes: dict[str, Any] = {"state_file": state_file}
            if meta is not None:
                changes["meta"] = json.dumps(meta)
            return self._bump(db, session_id, rev, **changes)

    # ---- jobs ----------------------------------------------------------------------------
    def create_job(self, job: JobRecord, *, stale_s: float) -> None:
        """Inserts ``job`` unless the session has a live job (queued/running with a heartbeat
        newer than ``stale_s``): then Busy. A stale live job is marked interrupted first.
        Conflict when the session is gone."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM sessions WHERE id = ?", (job.session_id,)).fetchone() is None:
                raise Conflict(job.session_id)
            now = time.time()
            for job_id, beat in db.execute("SELECT id, heartbeat FROM jobs WHERE session_id = ? AND status IN "
                                           "('queued', 'running')", (job.session_id,)).fetchall():
                if now - beat <= stale_s:
                    raise Busy(job_id)
                db.execute("UPDATE jobs SET status = 'interrupted', error = ?, updated = ? WHERE id = ?",
                           ("its server process stopped (no heartbeat)", now, job_id))
            db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (job.id, job.session_id, job.kind, job.status, job.stage, job.done, job.total, job.frame_idx,
                        job.error, json.dumps(job.params), job.created, job.updated, job.heartbeat, job.instance,
                        int(job.cancel), job.frames_done))

    def _job(self, row) -> JobRecord:
        (jid, sid, kind, status, stage, done, total, frame_idx, error, params, created, updated, beat, instance,
         cancel, frames_done) = row
        return JobRecord(jid, sid, kind, status, stage, done, total, frame_idx, error, json.loads(params), created,
                         updated, beat, instance, bool(cancel), frames_done)

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._job(row)

    def live_job(self, session_id: str, *, stale_s: float) -> JobRecord | None:
        now = time.time()
        for row in self._db().execute("SELECT * FROM jobs WHERE session_id = ? AND status IN ('queued', 'running')",
                                      (session_id,)).fetchall():
            job = self._job(row)
            if now - job.heartbeat <= stale_s:
                return job
        return None

    def last_job(self, session_id: str) -> JobRecord | None:
        row = self._db().execute("SELECT * FROM jobs WHERE session_id = ? ORDER BY created DESC LIMIT 1",
                                 (session_id,)).fetchone()
        return None if row is None else self._job(row)

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Sets ``fields`` (and ``updated``/``heartbeat`` to now) on the job."""
        now = time.time()
        fields = {**fields, "updated": now, "heartbeat": now}
        if "params" in fields:
            fields["params"] = json.dumps(fields["params"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._write() as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*fields.values(), job_id))

    def interrupt_jobs(self, *, older_than: float | None = None) -> int:
        """Marks live jobs interrupted: all of them (``older_than`` None: this process alone
        serves the store and has just started) or those whose heartbeat is older than
        ``older_than`` (epoch s). Returns the count."""
        with self._write() as db:
            cond = "" if older_than is None else " AND heartbeat < ?"
            args = () if older_than is None else (older_than,)
            return db.execute(f"UPDATE jobs SET status = 'interrupted', error = 'the server stopped while it ran: "
                              f"start it again', updated = ? WHERE status IN ('queued', 'running'){cond}",
                              (time.time(), *args)).rowcount

    def take_over_jobs(self, instance: str, *, older_than: float, limit: int, max_resumes: int) -> list[JobRecord]:
        with self._write() as db:
            stale = [self._job(r) for r in db.execute(
                "SELECT * FROM jobs WHERE status IN ('queued', 'running') AND heartbeat < ? ORDER BY created",
                (older_than,)).fetchall()]
            taken = []
            for job_id, changes in take_over_plan(stale, instance, limit=limit, max_resumes=max_resumes):
                sets = ", ".join(f"{k} = ?" for k in changes)
                db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*changes.values(), job_id))
                if changes["status"] == "queued":
                    taken.append(self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()))
            return taken

    def beat(self, instance: str) -> None:
        """Heartbeat of every live job of ``instance`` (queued ones too: waiting is not dying)."""
        with self._write() as db:
            db.execute("UPDATE jobs SET heartbeat = ? WHERE instance = ? AND status IN ('queued', 'running')",
                       (time.time(), instance))

    def jobs_by_status(self) -> dict[str, int]:
        return dict(self._db().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None



def take_over_plan(stale: list[JobRecord], instance: str, *, limit: int,
                   max_resumes: int) -> list[tuple[str, dict[str, Any]]]:
    """What ``take_over_jobs`` does to each stale job: (job id, columns to set), oldest first
    (``params`` as JSON). Shared by both stores."""
    now, plan, resumed = time.time(), [], 0
    for job in stale:
        times = int(job.params.get("resumed", 0))
        if job.cancel:
            plan.append((job.id, {"status": "cancelled", "updated": now,
                                  "error": "its server stopped (no heartbeat) after the cancel request"}))
        elif times >= max_resumes or resumed >= limit:
            why = f"taken over {times} times already" if times >= max_resumes else "no free job slot to resume it"
            plan.append((job.id, {"status": "interrupted", "updated": now,
                                  "error": f"its server stopped (no heartbeat); not resumed ({why}): start it again"}))
        else:
            resumed += 1
            params = {**job.params, "resumed": times + 1}
            plan.append((job.id, {"status": "queued", "stage": "queued", "done": 0, "error": None,
                                  "params": json.dumps(params), "instance": instance, "updated": now,
                                  "heartbeat": now}))
    return plan
