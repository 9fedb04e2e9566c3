"""The session store and the session blobs in PostgreSQL (``ivos serve --store
postgresql://...``), for servers on several machines: ``PostgresStore`` (the
``SessionStore`` of ``ivos.serve.store``, same tables and semantics as ``SQLiteStore``) and
``PostgresBlobs`` (the ``Blobs`` of ``ivos.serve.blobs``: uploads, video states and exports as
chunked ``bytea`` rows). Needs the ``postgres`` extra (``psycopg[binary]``, ``psycopg-pool``).

Semantics, as SQLite's:

* Every write is one transaction (durability as SQLite's: ``--fsync`` waits for the disk at
  every commit, ``Database``). Writes taking ``rev`` run ``UPDATE sessions SET rev = rev + 1
  ... WHERE id = %s AND rev = %s``: a concurrent writer of the same row waits for the first to
  commit, then matches no row and gets ``Conflict``. ``create_job`` locks the session row
  (``FOR UPDATE``) before looking for a live job, and a partial unique index allows one live job
  per session whatever happens.
* The schema is versioned (``schema_version``) and migrated on start (``MIGRATIONS``), in one
  transaction under an advisory lock: replicas starting together migrate once; a database newer
  than this ivos is refused.

Connections come from a ``psycopg_pool.ConnectionPool``; every write is an explicit
transaction (``BEGIN`` ... ``COMMIT``), so a connection found dead on its first statement is
known to have written nothing. Failures:

* A connection that breaks before the commit is sent (the server restarted since it was
  pooled, a network blip, a deadlock) is retried: the pool's idle connections are checked (the
  dead ones replaced) and the transaction runs again on a fresh one, which is safe since it was
  rolled back. Reads are retried likewise. While the database is down the pool tries to
  reconnect in the background (``RECONNECT_S`` per attempt, again at the next request).
* When no connection works within ``timeout_s`` (the database is down), the call raises
  ``StoreUnavailable``: the request answers 503 with ``Retry-After`` and nothing was written.
* A connection that breaks while the commit is on its way leaves the outcome unknown: never
  retried; ``StoreUnavailable(in_doubt=True)`` (503 without automatic retry).

Blobs: ``blobs`` (key, size, chunk count, created) and ``blob_chunks`` (key, seq, ``CHUNK``
bytes of data, ``STORAGE EXTERNAL``: media are compressed already); a blob is written in one
transaction, so readers see all of it or none. Each process keeps local copies
(``ivos.serve.blobs.LocalCopies``) of what the libraries read from a path.
"""
from __future__ import annotations

import io
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .blobs import BlobInfo, BlobNotFound, Blobs, LocalCopies, atomic_copy, check_key
from .store import (ClickRecord, Conflict, JobRecord, SessionRecord, SessionStore, StoreUnavailable, Busy,
                    take_over_plan)

log = logging.getLogger("ivos.serve")

T = TypeVar("T")

SCHEMA_VERSION = 2
"""The schema this ivos writes; ``MIGRATIONS[v]`` takes a database from version v-1 to v."""

MIGRATIONS: dict[int, list[str]] = {
    1: [  # sessions, image clicks, jobs: SQLiteStore's tables
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL, rev BIGINT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
            num_frames INTEGER NOT NULL, fps DOUBLE PRECISION NOT NULL, media TEXT NOT NULL, state_file TEXT,
            meta TEXT NOT NULL DEFAULT '{}')""",
        "CREATE INDEX sessions_by_owner ON sessions (owner, updated DESC)",
        "CREATE INDEX sessions_by_updated ON sessions (updated)",
        """CREATE TABLE image_clicks (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE, seq INTEGER NOT NULL,
            x DOUBLE PRECISION NOT NULL, y DOUBLE PRECISION NOT NULL, positive BOOLEAN NOT NULL, mask TEXT NOT NULL,
            timings TEXT NOT NULL, PRIMARY KEY (session_id, seq))""",
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            kind TEXT NOT NULL, status TEXT NOT NULL, stage TEXT NOT NULL, done INTEGER NOT NULL,
            total INTEGER NOT NULL, frame_idx INTEGER, error TEXT, params TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,
            heartbeat DOUBLE PRECISION NOT NULL, instance TEXT NOT NULL, cancel BOOLEAN NOT NULL,
            frames_done INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX jobs_by_session ON jobs (session_id, created)",
        "CREATE UNIQUE INDEX jobs_one_live ON jobs (session_id) WHERE status IN ('queued', 'running')",
        "CREATE INDEX jobs_live_by_instance ON jobs (instance) WHERE status IN ('queued', 'running')",
    ],
    2: [  # session blobs (PostgresBlobs)
        """CREATE TABLE blobs (
            key TEXT COLLATE "C" PRIMARY KEY, size BIGINT NOT NULL, chunks INTEGER NOT NULL,
            created DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE blob_chunks (
            key TEXT COLLATE "C" NOT NULL REFERENCES blobs (key) ON DELETE CASCADE, seq INTEGER NOT NULL,
            data BYTEA NOT NULL, PRIMARY KEY (key, seq))""",
        "ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL",
    ],
}
MIGRATION_LOCK = 0x1905_2024
"""The advisory lock id held while migrating (one replica migrates; the others wait)."""

SESSION_COLUMNS = ("id, kind, owner, created, updated, rev, width, height, num_frames, fps, media, state_file, "
                   "meta")
JOB_COLUMNS = ("id, session_id, kind, status, stage, done, total, frame_idx, error, params, created, updated, "
               "heartbeat, instance, cancel, frames_done")
JOB_FIELDS = frozenset(c.strip() for c in JOB_COLUMNS.split(","))
SESSION_CHANGES = frozenset({"media", "width", "height", "num_frames", "fps", "state_file", "meta"})

CHUNK = 1 << 20
"""Bytes per ``blob_chunks`` row (benchmarks/results/postgres_store.md)."""
START_WAIT = 6
"""A starting server waits this many ``timeout_s`` for the database (30 s by default), then gives up."""
CONNECT_POLL_S = 0.5
"""A call waiting for a connection asks the pool again this often (until ``timeout_s``)."""
RECONNECT_S = 1.0
"""How long the pool keeps retrying one new connection in the background before it leaves the
next attempt to the next request: bounds how long a server stays away after the database is
back (the pool's own backoff would grow with the outage)."""


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """``url`` without its password (for logs and messages)."""
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[-1]}")
    if "password" in parts.query:
        parts = parts._replace(query="...")
    return urlunsplit(parts)


def _psycopg():
    try:
        import psycopg
        import psycopg_pool
    except ImportError as e:
        raise RuntimeError(f"--store postgresql://... needs the postgres extra: pip install 'ivos[postgres]' ({e})"
                           ) from None
    return psycopg, psycopg_pool


class _InDoubt(Exception):
    """The connection broke while COMMIT was on its way."""


class Database:
    """A connection pool on ``url`` with the retry rules of the module docstring: ``read(fn)``
    runs ``fn(connection)`` (autocommit: each statement its own snapshot), ``write(fn)`` runs it
    in one transaction; both retried on a fresh connection while ``timeout_s`` lasts.

    ``fsync``: as ``SQLiteStore``'s. False (default): ``synchronous_commit = off`` on these
    connections, a commit does not wait for the database's disk (about 3 ms a click on this
    machine's disk: benchmarks/results/postgres_store.md); it is atomic and survives a crash of
    ``ivos serve``, but a crash of the database server or its machine can lose the last commits
    (up to three ``wal_writer_delay``, 0.6 s by default), never corrupt the store. True
    (``ivos serve --fsync``): ``synchronous_commit = on``, every commit on disk (and on
    synchronous standbys) before the answer."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, min_size: int = 1, max_size: int = 10,
                 fsync: bool = False, application_name: str = "ivos serve"):
        psycopg, psycopg_pool = _psycopg()
        self._psycopg = psycopg
        self.url = url
        self.timeout_s = float(timeout_s)
        self.fsync = fsync
        params = psycopg.conninfo.conninfo_to_dict(url)
        defaults = {"application_name": application_name, "connect_timeout": max(2, round(self.timeout_s)),
                    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
        conninfo = psycopg.conninfo.make_conninfo("", **{**defaults, **params})
        self.pool = psycopg_pool.ConnectionPool(
            conninfo, min_size=min_size, max_size=max(min_size, max_size), open=False, name="ivos-store",
            kwargs={"autocommit": True}, configure=self._configure, timeout=self.timeout_s,
            reconnect_timeout=RECONNECT_S, reconnect_failed=self._gave_up)
        self._warned = 0.0
        start_wait_s = START_WAIT * self.timeout_s
        try:
            self.pool.open(wait=True, timeout=start_wait_s)
        except psycopg_pool.PoolTimeout:
            self.pool.close()
            try:  # the reason, for the operator (refused, unknown host, authentication, no such database)
                psycopg.connect(conninfo).close()
                reason = ""
            except Exception as e:
                reason = ": " + " ".join(str(e).split())[:300]
            raise StoreUnavailable(f"cannot connect to the PostgreSQL store {redacted(url)} within {start_wait_s:g} s"
                                   f"{reason}") from None

    def _configure(self, conn: Any) -> None:
        conn.execute(f"SET synchronous_commit = {'on' if self.fsync else 'off'}")

    def _gave_up(self, _pool: Any) -> None:
        if time.monotonic() - self._warned > 30.0:  # once in a while, not at every attempt
            self._warned = time.monotonic()
            log.warning("the PostgreSQL store %s is unreachable: requests answer 503 until it is back",
                        redacted(self.url))

    def _unavailable(self, error: BaseException | None) -> StoreUnavailable:
        why = f": {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}" \
            if error is not None else ""
        return StoreUnavailable(f"the session database did not answer within {self.timeout_s:g} s{why}")

    def _run(self, fn: Callable[[Any], T], *, write: bool) -> T:
        psycopg = self._psycopg
        from psycopg_pool import PoolTimeout

        deadline = time.monotonic() + self.timeout_s
        delay, last = 0.02, None
        while True:
            try:
                # short waits: each new request for a connection makes the pool try a new one at once
                # (after an outage, the server is back within about CONNECT_POLL_S)
                wait = min(CONNECT_POLL_S, deadline - time.monotonic())
                with self.pool.connection(timeout=max(0.01, wait)) as conn:
                    return self._transaction(conn, fn) if write else fn(conn)
            except _InDoubt as e:
                cause = e.__cause__
                raise StoreUnavailable(f"the connection to the session database broke while committing ({cause}): "
                                       "the change may or may not have been saved; read the session again before "
                                       "repeating it", in_doubt=True) from cause
            except PoolTimeout:
                if time.monotonic() >= deadline:
                    raise self._unavailable(last) from last
            except psycopg.OperationalError as e:  # rolled back: safe to run again
                first, last = last is None, e
                if time.monotonic() + (0 if first else delay) >= deadline:
                    raise self._unavailable(e) from e
                log.info("store connection failed (%s): retrying", type(e).__name__)
                if first:  # the server restarted? replace every dead idle connection, then at once
                    try:
                        self.pool.check()
                    except Exception:
                        pass
                else:
                    time.sleep(delay)
                    delay = min(delay * 4, 0.5)

    def _transaction(self, conn: Any, fn: Callable[[Any], T]) -> T:
        psycopg = self._psycopg
        committing = False
        try:
            with conn.transaction():
                result = fn(conn)
                committing = True
            return result
        except psycopg.errors.TransactionRollback:
            raise  # serialization failure, deadlock: rolled back for sure, retried
        except psycopg.OperationalError as e:
            if committing:
                raise _InDoubt() from e
            raise

    def read(self, fn: Callable[[Any], T]) -> T:
        return self._run(fn, write=False)

    def write(self, fn: Callable[[Any], T]) -> T:
        return self._run(fn, write=True)

    def migrate(self) -> int:
        """Brings the schema to ``SCHEMA_VERSION`` (one transaction, advisory lock); returns the
        version found. RuntimeError when the database is newer than this ivos."""
        def run(conn: Any) -> int:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            found = row[0] or 0
            if found > SCHEMA_VERSION:
                raise RuntimeError(f"the PostgreSQL store {redacted(self.url)} has schema version {found}, newer than "
                                   f"this ivos ({SCHEMA_VERSION}): upgrade ivos")
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                log.info("store schema migrated to version %d", version)
            if found < SCHEMA_VERSION:
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
            return found
        return self.write(run)

    def close(self) -> None:
        self.pool.close()


def _session(row: tuple) -> SessionRecord:
    *head, meta = row
    return SessionRecord(*head, meta=json.loads(meta))


def _job(row: tuple) -> JobRecord:
    (jid, sid, kind, status, stage, done, total, frame_idx, error, params, created, updated, beat, instance,
     cancel, frames_done) = row
    return JobRecord(jid, sid, kind, status, stage, done, total, frame_idx, error, json.loads(params), created,
                     updated, beat, instance, bool(cancel), frames_done)


class PostgresStore(SessionStore):
    """``SessionStore`` in PostgreSQL (``url``: ``postgresql://user@host:port/db``; libpq's
    environment and ``~/.pgpass`` apply). Migrates the schema on start (waiting up to
    ``START_WAIT`` x ``timeout_s`` for the database). ``timeout_s``: the longest a call waits
    for the database (then ``StoreUnavailable``); ``pool_size``: connections at most."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, pool_size: int = 10, fsync: bool = False):
        self.url = url
        self.db = Database(url, timeout_s=timeout_s, max_size=pool_size, fsync=fsync)
        try:
            self.db.migrate()
        except BaseException:
            self.db.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({redacted(self.url)!r})"

    @staticmethod
    def _bump(conn: Any, session_id: str, rev: int, **changes: Any) -> int:
        """Inside a transaction: rev -> rev + 1 (plus ``changes``), or Conflict."""
        bad = set(changes) - SESSION_CHANGES
        if bad:
            raise ValueError(f"not session columns: {sorted(bad)}")
        sets = "".join(f", {k} = %s" for k in changes)
        cur = conn.execute(f"UPDATE sessions SET rev = rev + 1, updated = %s{sets} WHERE id = %s AND rev = %s",
                           (time.time(), *changes.values(), session_id, rev))
        if cur.rowcount != 1:
            raise Conflict(session_id)
        return rev + 1

    # ---- sessions ------------------------------------------------------------------------
    def create_session(self, record: SessionRecord) -> None:
        self.db.write(lambda c: c.execute(
            f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (record.id, record.kind, record.owner, record.created, record.updated, record.rev, record.width,
             record.height, record.num_frames, record.fps, record.media, record.state_file, json.dumps(record.meta))))

    def get_session(self, session_id: str) -> SessionRecord | None:
        row = self.db.read(lambda c: c.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = %s",
                                               (session_id,)).fetchone())
        return None if row is None else _session(row)

    def delete_session(self, session_id: str) -> bool:
        return self.db.write(lambda c: c.execute("DELETE FROM sessions WHERE id = %s", (session_id,)).rowcount == 1)

    def count_sessions(self) -> dict[str, int]:
        rows = self.db.read(lambda c: c.execute("SELECT kind, COUNT(*) FROM sessions GROUP BY kind").fetchall())
        return {"image": 0, "video": 0, **dict(rows)}

    def list_sessions(self, owner: str, kind: str | None = None, limit: int = 100) -> list[SessionRecord]:
        """``owner``'s sessions (of ``kind``), most recently changed first."""
        cond, args = ("AND kind = %s", (kind,)) if kind else ("", ())
        rows = self.db.read(lambda c: c.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE owner = %s {cond} ORDER BY updated DESC LIMIT %s",
            (owner, *args, limit)).fetchall())
        return [_session(r) for r in rows]

    def idle_sessions(self, before: float) -> list[str]:
        """Sessions unchanged since ``before`` (epoch s) without a queued or running job."""
        return [r[0] for r in self.db.read(lambda c: c.execute(
            "SELECT id FROM sessions s WHERE updated < %s AND NOT EXISTS (SELECT 1 FROM jobs j WHERE "
            "j.session_id = s.id AND j.status IN ('queued', 'running'))", (before,)).fetchall())]

    def session_ids(self) -> set[str]:
        return {r[0] for r in self.db.read(lambda c: c.execute("SELECT id FROM sessions").fetchall())}

    # ---- image sessions ------------------------------------------------------------------
    def clicks(self, session_id: str) -> list[ClickRecord]:
        rows = self.db.read(lambda c: c.execute(
            "SELECT seq, x, y, positive, mask, timings FROM image_clicks WHERE session_id = %s ORDER BY seq",
            (session_id,)).fetchall())
        return [ClickRecord(seq, x, y, bool(p), json.loads(m), json.loads(t)) for seq, x, y, p, m, t in rows]

    def add_click(self, session_id: str, rev: int, click: ClickRecord) -> int:
        def run(c: Any) -> int:
            new = self._bump(c, session_id, rev)
            c.execute("INSERT INTO image_clicks (session_id, seq, x, y, positive, mask, timings) VALUES "
                      "(%s, %s, %s, %s, %s, %s, %s)", (session_id, click.seq, click.x, click.y, bool(click.positive),
                                                       json.dumps(click.mask_rle), json.dumps(click.timings)))
            return new
        return self.db.write(run)

    def pop_click(self, session_id: str, rev: int) -> int:
        def run(c: Any) -> int:
            new = self._bump(c, session_id, rev)
            c.execute("DELETE FROM image_clicks WHERE session_id = %s AND seq = (SELECT MAX(seq) FROM image_clicks "
                      "WHERE session_id = %s)", (session_id, session_id))
            return new
        return self.db.write(run)

    def clear_clicks(self, session_id: str, rev: int, **changes: Any) -> int:
        """Drops every click; ``changes`` (e.g. a new media, width, height) in the same
        transaction."""
        def run(c: Any) -> int:
            new = self._bump(c, session_id, rev, **changes)
            c.execute("DELETE FROM image_clicks WHERE session_id = %s", (session_id,))
            return new
        return self.db.write(run)

    # ---- video sessions ------------------------------------------------------------------
    def set_state(self, session_id: str, rev: int, state_file: str, meta: dict | None = None) -> int:
        changes: dict[str, Any] = {"state_file": state_file}
        if meta is not None:
            changes["meta"] = json.dumps(meta)
        return self.db.write(lambda c: self._bump(c, session_id, rev, **changes))

    # ---- jobs ----------------------------------------------------------------------------
    def create_job(self, job: JobRecord, *, stale_s: float) -> None:
        """Inserts ``job`` unless the session has a live job (queued/running with a heartbeat
        newer than ``stale_s``): then Busy. A stale live job is marked interrupted first.
        Conflict when the session is gone."""
        def run(c: Any) -> None:
            if c.execute("SELECT 1 FROM sessions WHERE id = %s FOR UPDATE", (job.session_id,)).fetchone() is None:
                raise Conflict(job.session_id)
            now = time.time()
            for job_id, beat in c.execute("SELECT id, heartbeat FROM jobs WHERE session_id = %s AND status IN "
                                          "('queued', 'running')", (job.session_id,)).fetchall():
                if now - beat <= stale_s:
                    raise Busy(job_id)
                c.execute("UPDATE jobs SET status = 'interrupted', error = %s, updated = %s WHERE id = %s",
                          ("its server process stopped (no heartbeat)", now, job_id))
            c.execute(f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES "
                      "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                      (job.id, job.session_id, job.kind, job.status, job.stage, job.done, job.total, job.frame_idx,
                       job.error, json.dumps(job.params), job.created, job.updated, job.heartbeat, job.instance,
                       bool(job.cancel), job.frames_done))
        self.db.write(run)

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self.db.read(lambda c: c.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone())
        return None if row is None else _job(row)

    def live_job(self, session_id: str, *, stale_s: float) -> JobRecord | None:
        now = time.time()
        rows = self.db.read(lambda c: c.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE session_id = %s AND status IN ('queued', 'running')",
            (session_id,)).fetchall())
        for row in rows:
            job = _job(row)
            if now - job.heartbeat <= stale_s:
                return job
        return None

    def last_job(self, session_id: str) -> JobRecord | None:
        row = self.db.read(lambda c: c.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE session_id = %s ORDER BY created DESC LIMIT 1",
            (session_id,)).fetchone())
        return None if row is None else _job(row)

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Sets ``fields`` (and ``updated``/``heartbeat`` to now) on the job."""
        bad = set(fields) - JOB_FIELDS
        if bad:
            raise ValueError(f"not job columns: {sorted(bad)}")
        now = time.time()
        fields = {**fields, "updated": now, "heartbeat": now}
        if "params" in fields:
            fields["params"] = json.dumps(fields["params"])
        if "cancel" in fields:
            fields["cancel"] = bool(fields["cancel"])
        sets = ", ".join(f"{k} = %s" for k in fields)
        self.db.write(lambda c: c.execute(f"UPDATE jobs SET {sets} WHERE id = %s", (*fields.values(), job_id)))

    def interrupt_jobs(self, *, older_than: float | None = None) -> int:
        """Marks live jobs interrupted: all of them (``older_than`` None) or those whose
        heartbeat is older than ``older_than`` (epoch s). Returns the count."""
        cond = "" if older_than is None else " AND heartbeat < %s"
        args = () if older_than is None else (older_than,)
        return self.db.write(lambda c: c.execute(
            "UPDATE jobs SET status = 'interrupted', error = 'the server stopped while it ran: start it again', "
            f"updated = %s WHERE status IN ('queued', 'running'){cond}", (time.time(), *args)).rowcount)

    def take_over_jobs(self, instance: str, *, older_than: float, limit: int, max_resumes: int) -> list[JobRecord]:
        def run(c: Any) -> list[JobRecord]:
            # SKIP LOCKED: a job another server is taking over now is left to it
            stale = [_job(r) for r in c.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'running') AND heartbeat < %s "
                "ORDER BY created FOR UPDATE SKIP LOCKED", (older_than,)).fetchall()]
            taken = []
            for job_id, changes in take_over_plan(stale, instance, limit=limit, max_resumes=max_resumes):
                sets = ", ".join(f"{k} = %s" for k in changes)
                row = c.execute(f"UPDATE jobs SET {sets} WHERE id = %s RETURNING {JOB_COLUMNS}",
                                (*changes.values(), job_id)).fetchone()
                if changes["status"] == "queued":
                    taken.append(_job(row))
            return taken
        return self.db.write(run)

    def beat(self, instance: str) -> None:
        """Heartbeat of every live job of ``instance`` (queued ones too: waiting is not dying)."""
        self.db.write(lambda c: c.execute(
            "UPDATE jobs SET heartbeat = %s WHERE instance = %s AND status IN ('queued', 'running')",
            (time.time(), instance)))

    def jobs_by_status(self) -> dict[str, int]:
        return dict(self.db.read(lambda c: c.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()))

    def close(self) -> None:
        self.db.close()


def _next_prefix(prefix: str) -> str:
    """The smallest string after every string starting with ``prefix`` (byte order, COLLATE "C")."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _ChunkReader(io.RawIOBase):
    """A blob read chunk by chunk (one query each, retried as any read)."""

    def __init__(self, blobs: "PostgresBlobs", key: str, size: int, chunks: int):
        self.blobs, self.key, self.size, self.chunks = blobs, key, size, chunks
        self._seq, self._buf = 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf and self._seq < self.chunks:
            seq = self._seq
            row = self.blobs.db.read(lambda c: c.execute("SELECT data FROM blob_chunks WHERE key = %s AND seq = %s",
                                                         (self.key, seq), binary=True).fetchone())
            if row is None:
                raise BlobNotFound(self.key)  # deleted meanwhile
            self._buf, self._seq = bytes(row[0]), seq + 1
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class PostgresBlobs(Blobs):
    """``Blobs`` in the store's database (``blobs`` + ``blob_chunks``, ``chunk`` bytes a row),
    with local copies under ``copies`` (``--data-dir``/cache)."""

    local = False

    def __init__(self, db: Database, copies: str | Path, *, chunk: int = CHUNK):
        self.db = db
        self.copies = LocalCopies(copies)
        self.chunk = chunk
        self._fetching: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        return self.copies.path(key)

    # ---- writing ---------------------------------------------------------------------
    def _insert(self, c: Any, key: str, source: BinaryIO) -> None:
        """Inside a transaction: (re)writes blob ``key`` from ``source`` (read from its start)."""
        source.seek(0)
        c.execute("INSERT INTO blobs (key, size, chunks, created) VALUES (%s, 0, 0, %s) ON CONFLICT (key) DO UPDATE "
                  "SET size = 0, chunks = 0, created = EXCLUDED.created", (key, time.time()))
        c.execute("DELETE FROM blob_chunks WHERE key = %s", (key,))
        size = seq = 0
        while True:
            data = source.read(self.chunk)
            if not data:
                break
            c.execute("INSERT INTO blob_chunks (key, seq, data) VALUES (%s, %s, %b)", (key, seq, data))
            size, seq = size + len(data), seq + 1
        c.execute("UPDATE blobs SET size = %s, chunks = %s WHERE key = %s", (size, seq, key))

    def put_file(self, key: str, path: Path) -> None:
        check_key(key)
        with open(path, "rb") as f:
            self.db.write(lambda c: self._insert(c, key, f))

    def put(self, key: str, data: bytes) -> None:
        check_key(key)
        self.db.write(lambda c: self._insert(c, key, io.BytesIO(data)))

    def put_tree(self, key: str, folder: Path) -> None:
        check_key(key)
        folder = Path(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file())

        def run(c: Any) -> None:
            for file in files:
                with open(file, "rb") as f:
                    self._insert(c, f"{key}/{file.relative_to(folder).as_posix()}", f)
        self.db.write(run)

    # ---- reading ---------------------------------------------------------------------
    def _info(self, key: str) -> tuple[int, int] | None:
        return self.db.read(lambda c: c.execute("SELECT size, chunks FROM blobs WHERE key = %s", (key,)).fetchone())

    def open(self, key: str) -> BinaryIO:
        info = self._info(check_key(key))
        if info is None:
            raise BlobNotFound(key)
        return io.BufferedReader(_ChunkReader(self, key, *info), buffer_size=self.chunk)

    def _download(self, key: str, size: int, target: Path) -> None:
        """Blob ``key`` into ``target`` (atomically), its chunks streamed by one query."""
        class Stream(io.RawIOBase):  # the chunks as a file for atomic_copy
            def __init__(self, rows: Any):
                self.rows, self.buf = rows, b""

            def readable(self) -> bool:
                return True

            def readinto(self, b: Any) -> int:
                while not self.buf:
                    row = next(self.rows, None)
                    if row is None:
                        return 0
                    self.buf = bytes(row[0])
                n = min(len(b), len(self.buf))
                b[:n], self.buf = self.buf[:n], self.buf[n:]
                return n

        def run(c: Any) -> None:
            rows = c.cursor(binary=True).stream("SELECT data FROM blob_chunks WHERE key = %s ORDER BY seq", (key,))
            atomic_copy(io.BufferedReader(Stream(iter(rows)), buffer_size=self.chunk), target, expected=size)
        self.db.read(run)

    def fetch(self, key: str) -> Path:
        target = self.path(key)
        if target.exists():
            return target
        with self._lock:
            lock = self._fetching.setdefault(key, threading.Lock())
        with lock:  # one download of a key at a time in this process
            try:
                if target.exists():
                    return target
                info = self._info(key)
                if info is not None:
                    self._download(key, info[0], target)
                    return target
                members = self.list(key + "/")
                if not members:
                    raise BlobNotFound(key)
                import secrets
                import shutil

                tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
                try:
                    for blob in members:
                        self._download(blob.key, blob.size, tmp / blob.key[len(key) + 1:])
                    tmp.rename(target)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                return target
            finally:
                with self._lock:
                    self._fetching.pop(key, None)

    def list(self, prefix: str) -> list[BlobInfo]:
        if not prefix:
            rows = self.db.read(lambda c: c.execute("SELECT key, size, created FROM blobs ORDER BY key").fetchall())
        else:
            rows = self.db.read(lambda c: c.execute(
                "SELECT key, size, created FROM blobs WHERE key >= %s AND key < %s ORDER BY key",
                (prefix, _next_prefix(prefix))).fetchall())
        return [BlobInfo(*r) for r in rows]

    def exists(self, key: str) -> bool:
        return self._info(check_key(key)) is not None

    def delete(self, key: str) -> None:
        check_key(key)
        under = key + "/"
        self.db.write(lambda c: c.execute("DELETE FROM blobs WHERE key = %s OR (key >= %s AND key < %s)",
                                          (key, under, _next_prefix(under))))
        self.copies.forget(key)

    def forget(self, key: str) -> None:
        self.copies.forget(key)

    def bytes_used(self) -> int:
        """Bytes the blob tables take in the database (with TOAST and indexes)."""
        return self.db.read(lambda c: c.execute(
            "SELECT pg_total_relation_size('blobs') + pg_total_relation_size('blob_chunks')").fetchone()[0])
