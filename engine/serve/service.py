"""``Service``: the server's core, independent of HTTP. Holds the one loaded model pair of the
process, the store, the bounded caches of live sessions and the pools; every public method is
one operation of the API, called from the routes (``ivos.serve.routes``; on Ray Serve replicas
the same).

Image sessions keep their clicks (with the mask each produced) in the store; the live part is
an ``ivos.ImagePredictor`` with the image set (decoding and preparing the image is what a
click saves by keeping it). A click runs ``predict(all clicks, mask_input=previous mask)``,
which is exactly what ``ImagePredictor.add_click`` runs, so a session rebuilt from the store
continues with the masks it would have had in one process.

Video sessions keep an ``ivos.VideoState`` file per revision (``VideoState.save``, atomic)
and the store names the current one; the live part is the loaded state. Each ``VideoPredictor``
method is one ``video_*`` method here: edits (``video_edit``) are refused with 409 while the
session has a job and commit a new revision; reads (``video_read``) run between two frames of a
running job. ``ivos.serve.jobs`` runs propagation.

Files (the upload, state files, exports) are blobs (``ivos.serve.blobs``), keyed
``sessions/<id>/...``: files under the data dir, or rows of the PostgreSQL store with a local
copy (``open_store``). A blob is written before the store row that names it is committed, and
deleted when that commit fails (kept when its outcome is in doubt); ``sweep_blobs`` removes
what no session names (a crash in between).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import re
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import InvalidInput
from ..settings import PropagationSettings
from .config import ServeConfig
from .errors import ApiError, busy, conflict, not_found
from .blobs import BlobInfo, Blobs, LocalBlobs
from .exports import EXPORT_FORMATS, write_export
from .live import LiveCache, SessionLocks
from .media import Limits, client_message, load_image, probe_video, store_frames, store_image
from .pools import BoundedPool
from .store import ClickRecord, Conflict, JobRecord, SessionRecord, SessionStore, SQLiteStore, StoreUnavailable

log = logging.getLogger("ivos.serve")

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
STORE_FILE = "sessions.sqlite3"
COPIES_DIR = "cache"
"""Under the data dir: local copies of blobs kept elsewhere (the PostgreSQL store's)."""
ORPHAN_AGE_S = 3600.0
"""A blob no session names is deleted once this old (younger ones may belong to a write in
flight on another process); at the start of an ``exclusive`` server, at once."""
SWEEP_S = 3600.0
"""How often a server looks for orphan blobs, local copies and temporary files."""


def open_store(config: ServeConfig, data_dir: Path) -> tuple[SessionStore, Blobs]:
    """The store and blobs of ``config``: SQLite in ``data_dir`` with blobs under it (default),
    or PostgreSQL (``config.store`` a ``postgresql://`` URL) with blobs in the same database and
    their local copies under ``data_dir/cache``; ``config.blobs`` (a folder) puts the blobs
    there instead (a disk every server mounts)."""
    if config.store_kind == "postgresql":
        from .store_postgres import PostgresBlobs, PostgresStore

        pool = max(10, config.request_threads + config.job_workers + 4)
        store: SessionStore = PostgresStore(config.store, timeout_s=config.store_timeout_s, pool_size=pool,
                                            fsync=config.fsync)
        blobs: Blobs = LocalBlobs(config.blobs, fsync=config.fsync) if config.blobs else \
            PostgresBlobs(store.db, data_dir / COPIES_DIR)
        return store, blobs
    store = SQLiteStore(data_dir / STORE_FILE, fsync=config.fsync)
    return store, LocalBlobs(config.blobs or data_dir, fsync=config.fsync)


def new_id(prefix: str) -> str:
    """An unguessable id: ``prefix`` + 144 random bits (URL-safe base64)."""
    return prefix + secrets.token_urlsafe(18)


def owner_of(api_key: str | None) -> str:
    """What the store records as a session's owner: a hash of the key (keys are never stored)."""
    return "" if not api_key else hashlib.sha256(api_key.encode()).hexdigest()[:32]


@dataclass
class LiveImage:
    """An image session in memory: an ``ivos.ImagePredictor`` with the image set and the
    session's clicks applied with ``add_click`` (its own history: undo is a pop), and how many."""

    predictor: Any
    clicks: int = 0


class Service:
    """Everything ``ivos serve`` does, as plain methods. ``load_models()`` may run in the
    background; ``ready`` says when it is done."""

    def __init__(self, config: ServeConfig, *, instance: str | None = None):
        config.check()
        self.config = config
        self.instance = instance or new_id("inst_")
        self.data_dir = Path(config.data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store, self.blobs = open_store(config, self.data_dir)
        self.limits = Limits(config.max_image_pixels, config.max_frames, config.max_duration_s)
        self.images: LiveCache[LiveImage] = LiveCache(config.live_images)
        self.videos: LiveCache[Any] = LiveCache(config.live_videos)
        self.locks = SessionLocks()
        self.requests = BoundedPool("requests", config.request_threads, config.request_queue)
        self.jobs_pool = BoundedPool("jobs", config.job_workers, config.job_queue, retry_after=10)
        self.exports = BoundedPool("exports", 1, 4, retry_after=5)
        self.click_model = self.osvos_model = None
        self.load_error: str | None = None
        self._models_loaded = threading.Event()
        self._local = threading.local()
        self.metrics = None  # set by the app (ivos.serve.metrics.Metrics)
        self._stopping = threading.Event()
        self.cancels: set[str] = set()  # job ids asked to stop, seen by this process's runners at once
        self.unsaved_jobs: dict[str, dict[str, Any]] = {}  # final job states the store refused, retried
        # with resume_jobs: runs dead servers' jobs here (ivos.serve.jobs.take_over_jobs, set by the app)
        self.take_over: Callable[["Service"], Any] | None = None
        self._unsaved_lock = threading.Lock()
        if config.exclusive:
            n = self.store.interrupt_jobs()
            if n:
                log.warning("marked %d job(s) interrupted: the server stopped while they ran", n)
            shutil.rmtree(self.data_dir / "tmp", ignore_errors=True)  # uploads and exports in flight
            self.sweep_blobs(0.0)

    def start_heartbeat(self, every_s: float = 5.0) -> None:
        """Keeps this process's queued and running jobs alive in the store (a daemon thread):
        a job whose process died stops beating and is taken as dead after ``job_stale_s``:
        run again here (``resume_jobs``) or marked interrupted."""
        ttl_s = self.config.session_ttl_h * 3600.0
        if ttl_s > 0:
            every_s = min(every_s, max(0.2, ttl_s / 4))  # expired sessions go within a quarter TTL
        every_s = min(every_s, max(0.2, self.config.job_stale_s / 3))  # a live job never looks stale

        next_sweep = time.monotonic() + (SWEEP_S if self.config.exclusive else 60.0)

        def beat() -> None:
            nonlocal next_sweep
            while not self._stopping.wait(every_s):
                try:
                    self.save_unsaved_jobs()
                    self.store.beat(self.instance)
                    # jobs of processes that died (another worker, replica or machine): run again
                    # here (--resume-jobs) or shown as interrupted
                    if self.config.resume_jobs and self.take_over is not None:
                        self.take_over(self)
                    else:
                        self.store.interrupt_jobs(older_than=time.time() - self.config.job_stale_s)
                    if ttl_s > 0:
                        self.sweep(time.time() - ttl_s)
                    if time.monotonic() >= next_sweep:
                        next_sweep = time.monotonic() + SWEEP_S
                        self.sweep_blobs(ORPHAN_AGE_S)
                except StoreUnavailable as e:  # the database is away: the next beat will do
                    log.warning("job heartbeat / session sweep: %s", e)
                except Exception:  # a busy store: the next beat will do
                    log.warning("job heartbeat / session sweep failed", exc_info=True)

        threading.Thread(target=beat, name="ivos-heartbeat", daemon=True).start()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def close(self) -> None:
        self._stopping.set()
        for pool in (self.requests, self.jobs_pool, self.exports):
            pool.shutdown()
        self.blobs.close()
        self.store.close()

    def save_job_state(self, job_id: str, **fields: Any) -> None:
        """``store.update_job``; when the store is unavailable, the fields are kept and written by
        the heartbeat thread once it is back (a job's final status is never lost, and its row
        never stays "running" while this process beats it)."""
        try:
            self.save_unsaved_jobs()
            self.store.update_job(job_id, **fields)
        except StoreUnavailable:
            with self._unsaved_lock:
                self.unsaved_jobs[job_id] = {**self.unsaved_jobs.get(job_id, {}), **fields}
            log.warning("job %s: the store is unavailable, its state (%s) is saved when it is back", job_id,
                        fields.get("status", "progress"))

    def save_unsaved_jobs(self) -> None:
        with self._unsaved_lock:
            pending = list(self.unsaved_jobs.items())
        for job_id, fields in pending:
            self.store.update_job(job_id, **fields)  # StoreUnavailable: still pending
            with self._unsaved_lock:
                if self.unsaved_jobs.get(job_id) is fields:
                    del self.unsaved_jobs[job_id]

    # ---- models --------------------------------------------------------------------------
    def load_models(self) -> None:
        """Loads the click and OSVOS bundles once for the process (``/readyz`` turns 200)."""
        import ivos

        try:
            self.click_model = ivos.load(self.config.model, backend=self.config.backend, threads=self.config.threads)
            self.osvos_model = ivos.load(self.config.osvos_model, backend=self.config.backend,
                                         threads=self.config.threads)
        except Exception as e:  # reported by /readyz (its type: the message may hold server paths)
            self.load_error = f"{type(e).__name__} (the server log has the details)"
            log.exception("loading the models failed")
        finally:
            self._models_loaded.set()

    @property
    def ready(self) -> bool:
        return self._models_loaded.is_set() and self.load_error is None

    def require_ready(self) -> None:
        if not self._models_loaded.is_set():
            raise ApiError(503, "not_ready", "the models are still loading: retry in a few seconds",
                           headers={"Retry-After": "2"})
        if self.load_error:
            raise ApiError(503, "model_error", f"the models failed to load: {self.load_error}")

    def video_predictor(self):
        """This thread's ``ivos.VideoPredictor`` (a predictor is not thread-safe; the models are
        shared)."""
        pred = getattr(self._local, "video", None)
        if pred is None:
            import ivos

            cfg = {k: v for k, v in (("steps", self.config.finetune_steps),
                                     ("augmentations", self.config.finetune_augmentations),
                                     ("quick_steps", self.config.quick_start)) if v is not None}
            # no fine-tuning flags: the recipe's settings; with flags, they go over the recipe's
            finetune = dataclasses.replace(PropagationSettings.resolve(
                self.osvos_model.bundle, propagation=self.config.propagation, threads=self.config.threads).finetune,
                **cfg) if cfg else None
            pred = ivos.VideoPredictor(self.osvos_model, self.click_model, crf=self.config.crf,
                                       finetune_config=finetune, adapt_every=self.config.adapt_every,
                                       propagation=self.config.propagation)
            self._local.video = pred
        return pred

    # ---- blobs ---------------------------------------------------------------------------
    def discard(self, key: str, error: BaseException | None = None) -> None:
        """Deletes blob (or tree) ``key`` after a failed commit; kept when the commit's outcome is
        in doubt (the row may name it: ``sweep_blobs`` decides later). Never raises."""
        if isinstance(error, StoreUnavailable) and error.in_doubt:
            return
        try:
            self.blobs.delete(key)
        except Exception as e:  # the database is away too: the sweep removes it later
            log.warning("could not delete blob %s now (%s): the orphan sweep will", key, e)
            self.blobs.forget(key)

    @contextlib.contextmanager
    def _committing(self, key: str, session_id: str, live: LiveCache) -> Iterator[None]:
        """Around writing blob ``key`` and the store row that names it: on any failure the blob
        is discarded (``discard``), the session's live copy dropped (it may be ahead of the
        store), and a lost revision race answered as 409 ``conflict``."""
        try:
            yield
        except BaseException as e:
            self.discard(key, e)
            live.drop(session_id)
            if isinstance(e, Conflict):
                raise conflict(session_id) from None
            raise

    def sweep_blobs(self, min_age_s: float) -> int:
        """Deletes the blobs that no session names (its upload or frames, its current state,
        its exports of the current revision) and that are older than ``min_age_s``, the local
        copies of those, and temporary files as old. Returns how many blobs went."""
        limit = time.time() - min_age_s
        ids = self.store.session_ids()
        by_session: dict[str, list[BlobInfo]] = {}
        for blob in self.blobs.list("sessions/"):
            parts = blob.key.split("/")
            if len(parts) >= 3:
                by_session.setdefault(parts[1], []).append(blob)
        n = 0
        for sid, blobs in by_session.items():
            rec = self.store.get_session(sid) if sid in ids else None
            if rec is None and all(b.created < limit for b in blobs):  # a session gone: all of it
                self.discard(f"sessions/{sid}")
                n += len(blobs)
                continue
            for blob in blobs:
                if blob.created < limit and not (rec is not None and refers_to(rec, blob.key)):
                    self.discard(blob.key)
                    n += 1
        copies = getattr(self.blobs, "copies", None)
        if copies is not None:  # local copies of remote blobs: of deleted sessions, of old revisions
            for folder in copies.sessions():
                rec = self.store.get_session(folder.name) if folder.name in ids else None
                for path in [p for p in folder.rglob("*") if p.is_file()]:
                    key = path.relative_to(copies.root).as_posix()
                    if path.stat().st_mtime < limit and not (rec is not None and refers_to(rec, key)):
                        path.unlink(missing_ok=True)
                if rec is None and folder.stat().st_mtime < limit:
                    shutil.rmtree(folder, ignore_errors=True)
        tmp = self.data_dir / "tmp"
        if tmp.is_dir():
            for path in tmp.iterdir():
                if path.stat().st_mtime < limit:
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if n:
            log.info("deleted %d blob(s) no session names", n)
        return n

    # ---- sessions ------------------------------------------------------------------------
    def session(self, session_id: str, owner: str, kind: str) -> SessionRecord:
        """The session's record, or 404 for an unknown id, another key's session or another kind."""
        if not SESSION_ID.match(session_id or ""):
            raise not_found(f"{kind} session", session_id)
        rec = self.store.get_session(session_id)
        if rec is None or rec.kind != kind or not secrets.compare_digest(rec.owner, owner):
            raise not_found(f"{kind} session", session_id)
        return rec

    def list_sessions(self, owner: str, kind: str | None = None, limit: int = 100) -> list[SessionRecord]:
        """``owner``'s sessions (of ``kind``), most recently changed first."""
        return self.store.list_sessions(owner, kind, limit)

    def temp_path(self, prefix: str) -> Path:
        """A new path under the data dir's ``tmp/`` (uploads and exports in flight; emptied at
        start-up)."""
        tmp = self.data_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        return tmp / f"{prefix}-{secrets.token_hex(8)}"

    def delete(self, rec: SessionRecord) -> None:
        with self.locks(rec.id):
            job = self.store.live_job(rec.id, stale_s=self.config.job_stale_s)
            if job is not None:
                self.cancels.add(job.id)
                self.store.update_job(job.id, cancel=1)
            self.store.delete_session(rec.id)
            (self.images if rec.kind == "image" else self.videos).drop(rec.id)
            self.discard(f"sessions/{rec.id}")

    def sweep(self, before: float) -> int:
        """Deletes the sessions unchanged since ``before`` (epoch s) and without a job, with
        their files (``--session-ttl-h``). Returns how many."""
        n = 0
        for sid in self.store.idle_sessions(before):
            rec = self.store.get_session(sid)
            with self.locks(sid):
                fresh = self.store.get_session(sid)
                if rec is None or fresh is None or fresh.updated >= before:
                    continue  # changed meanwhile
                self.store.delete_session(sid)
                (self.images if rec.kind == "image" else self.videos).drop(sid)
                self.discard(f"sessions/{sid}")
                n += 1
        if n:
            log.info("deleted %d session(s) idle for more than --session-ttl-h", n)
        return n

    def counts(self) -> dict[str, int]:
        return self.store.count_sessions()

    # ---- image sessions ------------------------------------------------------------------
    def create_image(self, owner: str, data: bytes) -> SessionRecord:
        self.require_ready()
        sid = new_id("img_")
        prefix = f"sessions/{sid}"
        try:
            path, image = store_image(self.blobs.path(prefix), data, self.limits)
            key = f"{prefix}/{path.name}"
            self.blobs.put_file(key, path)
            now = time.time()
            h, w = image.shape[:2]
            rec = SessionRecord(sid, "image", owner, now, now, 0, w, h, media=key)
            self.store.create_session(rec)
        except BaseException as e:
            self.discard(prefix, e)
            raise
        self.images.put(sid, 0, LiveImage(self._image_predictor(image)))
        return rec

    def _image_predictor(self, image: np.ndarray):
        import ivos

        predictor = ivos.ImagePredictor(self.click_model, max_image_pixels=self.config.max_image_pixels)
        predictor.set_image(image)
        return predictor

    def _live_image(self, rec: SessionRecord) -> LiveImage:
        """The session's live entry at ``rec.rev``, rebuilt when evicted, never built, or stale
        (another process changed the session): the image set again and the stored clicks
        replayed with ``add_click``, so the predictor is in the state it had (same clicks, same
        results; the library's click history is deterministic)."""
        live = self.images.get(rec.id, rec.rev)
        if live is None:
            predictor = self._image_predictor(load_image(self.blobs.fetch(rec.media)))
            clicks = self.store.clicks(rec.id)
            for c in clicks:
                predictor.add_click(c.x, c.y, c.positive)
            live = LiveImage(predictor, len(clicks))
            self.images.put(rec.id, rec.rev, live)
        return live

    def _fresh(self, rec: SessionRecord) -> SessionRecord:
        """The record re-read inside the session lock (its rev is what a write must match)."""
        fresh = self.store.get_session(rec.id)
        if fresh is None:
            raise not_found(f"{rec.kind} session", rec.id)
        return fresh

    def image_click(self, rec: SessionRecord, x: Any, y: Any, positive: Any) -> tuple[Any, int]:
        """``add_click``; returns (the ``ivos.ClickResult``, clicks now). The click is stored
        (with its mask) in the same step; if the store refuses it, the live predictor is
        dropped (it has the click the store has not) and rebuilt on the next request."""
        self.require_ready()
        x = coordinate("x", x, rec.width, "column")
        y = coordinate("y", y, rec.height, "row")
        positive = label("positive", positive)
        with self.locks(rec.id):
            rec = self._fresh(rec)
            live = self._live_image(rec)
            result = invalid_to_422(lambda: live.predictor.add_click(x, y, positive))
            from ..formats.rle import rle_encode

            record = ClickRecord(live.clicks + 1, x, y, positive, rle_encode(result.mask), asdict(result.timings))
            try:
                rev = self.store.add_click(rec.id, rec.rev, record)
            except BaseException:
                self.images.drop(rec.id)
                raise
            live.clicks += 1
            self.images.put(rec.id, rev, live)
        if self.metrics is not None:
            self.metrics.click_timings(asdict(result.timings))
        return result, live.clicks

    def image_undo(self, rec: SessionRecord) -> tuple[Any, int]:
        """``undo``: drops the last click; returns (the ``ClickResult`` before it or None, clicks
        now). Undo with no click is a no-op, as in ``ImagePredictor``."""
        with self.locks(rec.id):
            rec = self._fresh(rec)
            live = self._live_image(rec)
            if not live.clicks:
                return None, 0
            try:
                rev = self.store.pop_click(rec.id, rec.rev)
            except BaseException:
                self.images.drop(rec.id)
                raise
            result = live.predictor.undo()
            live.clicks -= 1
            self.images.put(rec.id, rev, live)
            return result, live.clicks

    def image_reset(self, rec: SessionRecord) -> None:
        """``reset``: forgets every click (keeps the image)."""
        with self.locks(rec.id):
            rec = self._fresh(rec)
            live = self._live_image(rec)
            try:
                rev = self.store.clear_clicks(rec.id, rec.rev)
            except BaseException:
                self.images.drop(rec.id)
                raise
            live.predictor.reset()
            live.clicks = 0
            self.images.put(rec.id, rev, live)

    def image_replace(self, rec: SessionRecord, data: bytes) -> SessionRecord:
        """``set_image`` on an existing session: a new image, every click forgotten."""
        self.require_ready()
        tmp = self.temp_path("upload")
        try:
            path, image = store_image(tmp, data, self.limits)
            with self.locks(rec.id):
                rec = self._fresh(rec)
                h, w = image.shape[:2]
                key = f"sessions/{rec.id}/image-{rec.rev + 1}-{secrets.token_hex(4)}{path.suffix}"
                final = self.blobs.path(key)
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), final)
                with self._committing(key, rec.id, self.images):
                    self.blobs.put_file(key, final)
                    rev = self.store.clear_clicks(rec.id, rec.rev, media=key, width=w, height=h)
                if rec.media != key:
                    self.discard(rec.media)
                self.images.put(rec.id, rev, LiveImage(self._image_predictor(image)))
                # committed: nothing may fail from here on (a store read could: the request would say 503)
                return dataclasses.replace(rec, rev=rev, media=key, width=w, height=h, updated=time.time())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def image_predict(self, rec: SessionRecord, points: Any, labels: Any, mask: np.ndarray | None, *,
                      view: Any = None):
        """Stateless ``ImagePredictor.predict`` on the session's image (clicks untouched);
        ``view`` the box the network sees (``ivos.image.geometry.Box``; None: its own)."""
        self.require_ready()
        with self.locks(rec.id):
            rec = self._fresh(rec)
            live = self._live_image(rec)
            return invalid_to_422(lambda: live.predictor.predict(point_array(points), np.asarray(labels),
                                                                 mask_input=mask, view=view))

    def image_result(self, rec: SessionRecord) -> Any:
        """The session's current ``ClickResult`` (None before its first click)."""
        with self.locks(rec.id):
            rec = self._fresh(rec)
            return self._live_image(rec).predictor.result

    def image_state(self, rec: SessionRecord) -> tuple[list[tuple[float, float, bool]], np.ndarray | None]:
        """(clicks, current mask or None)."""
        with self.locks(rec.id):
            rec = self._fresh(rec)
            clicks = self.store.clicks(rec.id)
        from ..formats.rle import rle_decode

        return [(c.x, c.y, c.positive) for c in clicks], (rle_decode(clicks[-1].mask_rle) if clicks else None)

    # ---- video sessions ------------------------------------------------------------------
    def create_video(self, owner: str, *, video: Path | None = None, frames: list[bytes] | None = None,
                     fps: float | None = None) -> SessionRecord:
        """A video session from an uploaded file (``video``: a temporary file, moved into the
        session folder) or frames (image bytes in order). Decoded completely before it exists."""
        self.require_ready()
        if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 1000):
            raise ApiError(422, "invalid_request", f"fps must be a number in (0, 1000], got {fps!r}")
        sid = new_id("vid_")
        prefix = f"sessions/{sid}"
        self.blobs.path(prefix).mkdir(parents=True)
        try:
            media_key, state_key = f"{prefix}/{'video' if video is not None else 'frames'}", state_key_of(sid, 0)
            media = self.blobs.path(media_key)
            if video is not None:
                shutil.move(str(video), media)
            else:
                store_frames(media, frames or [], self.limits)
            n, h, w, rate = probe_video(media, self.limits, fps=fps)
            pred = self.video_predictor()
            try:
                state = pred.init_state(str(media), cache_size=self.config.frame_cache, fps=fps, max_frames=None)
            except InvalidInput as e:
                raise ApiError(422, "invalid_input", client_message(e, media)) from None
            state_file = state.save(self.blobs.path(state_key), embed_frames=False)
            if video is not None:
                self.blobs.put_file(media_key, media)
            else:
                self.blobs.put_tree(media_key, media)
            self.blobs.put_file(state_key, state_file)
            now = time.time()
            rec = SessionRecord(sid, "video", owner, now, now, 0, w, h, num_frames=n, fps=rate, media=media_key,
                                state_file=state_key)
            self.store.create_session(rec)
        except BaseException as e:
            self.discard(prefix, e)
            raise
        self.videos.put(sid, 0, state)
        return rec

    def video_state(self, rec: SessionRecord):
        """The session's live ``VideoState`` at ``rec.rev`` (loaded from its file when needed).
        Call inside the session lock."""
        state = self.videos.get(rec.id, rec.rev)
        if state is None:
            import ivos

            state = ivos.VideoState.load(self.blobs.fetch(rec.state_file), video=str(self.blobs.fetch(rec.media)),
                                         cache_size=self.config.frame_cache)
            self.videos.put(rec.id, rec.rev, state)
        return state

    def commit_state(self, rec: SessionRecord, state) -> SessionRecord:
        """Saves ``state`` as the session's next revision (the state blob first, then the store
        row in one transaction; the old blob goes after). When the commit fails, the live state
        is dropped (it holds what the store does not: the next request reloads the stored one).
        Call inside the session lock."""
        key = state_key_of(rec.id, rec.rev + 1)
        with self._committing(key, rec.id, self.videos):
            self.blobs.path(key).parent.mkdir(parents=True, exist_ok=True)  # a copies folder swept meanwhile
            path = state.save(self.blobs.path(key), embed_frames=False)
            self.blobs.put_file(key, path)
            rev = self.store.set_state(rec.id, rec.rev, key)
        if rec.state_file and rec.state_file != key:
            self.discard(rec.state_file)
        self.videos.put(rec.id, rev, state)
        # committed: nothing may fail from here on (a store read could: the request would say 503)
        return dataclasses.replace(rec, rev=rev, state_file=key, updated=time.time())

    def video_edit(self, rec: SessionRecord, edit: Callable[[Any, Any], Any]) -> Any:
        """Runs ``edit(predictor, state)`` under the session lock, refused (409) while a job
        runs, and commits the state. InvalidInput -> 422 with the state unchanged."""
        self.require_ready()
        with self.locks(rec.id):
            rec = self._fresh(rec)
            job = self.store.live_job(rec.id, stale_s=self.config.job_stale_s)
            if job is not None:
                raise busy(rec.id, job.id)
            state = self.video_state(rec)
            pred = self.video_predictor()
            try:
                result = invalid_to_422(lambda: edit(pred, state))
            except ApiError:
                raise  # InvalidInput: the library left the state as it was
            except BaseException:
                self.videos.drop(rec.id)  # an unexpected failure may have half-changed it: reload
                raise
            self.commit_state(rec, state)
            return result

    def video_read(self, rec: SessionRecord, read: Callable[[Any, Any], Any]) -> Any:
        """Runs ``read(predictor, state)`` under the session lock (between two frames of a
        running propagation). InvalidInput -> 422."""
        self.require_ready()
        with self.locks(rec.id):
            rec = self._fresh(rec)
            state = self.video_state(rec)
            return invalid_to_422(lambda: read(self.video_predictor(), state))

    # the VideoPredictor's edits: each commits a new revision
    def video_add_points(self, rec: SessionRecord, frame_idx: int, obj_id: int, points: list, labels: list, *,
                         clear_old_points: bool = False) -> Any:
        """``add_new_points``; returns the ``ivos.FrameResult``."""
        points = point_array(points)
        return self.video_edit(rec, lambda p, s: p.add_new_points(s, frame_idx, obj_id, points, np.asarray(labels),
                                                                   clear_old_points=clear_old_points))

    def video_add_mask(self, rec: SessionRecord, frame_idx: int, obj_id: int, mask: np.ndarray) -> Any:
        """``add_new_mask``; returns the ``ivos.FrameResult``."""
        return self.video_edit(rec, lambda p, s: p.add_new_mask(s, frame_idx, obj_id, mask))

    def video_refine(self, rec: SessionRecord, frame_idx: int, obj_id: int, points: list, labels: list) -> Any:
        """``refine`` (a correction on a propagated frame); returns the ``ivos.FrameResult``."""
        points = point_array(points)
        return self.video_edit(rec, lambda p, s: p.refine(s, frame_idx, obj_id, points, np.asarray(labels)))

    def video_undo(self, rec: SessionRecord, frame_idx: int, obj_id: int) -> Any:
        """``undo`` on one frame and object; returns the ``ivos.FrameResult`` or None."""
        return self.video_edit(rec, lambda p, s: p.undo(s, frame_idx, obj_id))

    def video_remove_object(self, rec: SessionRecord, obj_id: int) -> None:
        self.video_edit(rec, lambda p, s: p.remove_object(s, obj_id))

    def video_reset(self, rec: SessionRecord) -> None:
        """``reset_state``: every object gone (the frames stay)."""
        self.video_edit(rec, lambda p, s: p.reset_state(s))

    # reads
    def video_objects(self, rec: SessionRecord) -> list[dict[str, Any]]:
        """Per object: ``obj_id``, ``annotated_frames``, ``clicks`` ({frame: [[x, y, label]]}),
        ``masked_frames`` and whether it is ``finetuned``."""
        def describe(_pred, state) -> list[dict[str, Any]]:
            objects = []
            for k in state.obj_ids:
                t = state.objects[k]
                clicks = {str(i): [[x, y, lab] for x, y, lab in c] for i, c in sorted(t.clicks.items())}
                objects.append({"obj_id": k, "annotated_frames": sorted(t.annotations), "clicks": clicks,
                                "masked_frames": len(t.masks), "finetuned": t.head is not None})
            return objects
        return self.video_read(rec, describe)

    def video_frame(self, rec: SessionRecord, frame_idx: int) -> np.ndarray:
        """Frame ``frame_idx`` as the session decodes it ((H, W, 3) uint8 RGB)."""
        if not 0 <= frame_idx < (rec.num_frames or 0):
            raise ApiError(422, "invalid_input", f"frame_idx must be 0 <= frame_idx < {rec.num_frames}, "
                           f"got {frame_idx}")
        return self.video_read(rec, lambda _p, s: s.video[frame_idx])

    def video_frame_masks(self, rec: SessionRecord, frame_idx: int) -> dict[int, np.ndarray]:
        """``object_masks``: every object's mask on one frame."""
        return self.video_read(rec, lambda p, s: p.object_masks(s, frame_idx))

    def video_masks(self, rec: SessionRecord) -> list[dict[str, Any]]:
        """``masks``: per frame with masks, ``frame_idx``, ``masks`` ({obj_id: COCO RLE}, encoded
        frame by frame), ``confidence`` and ``sources`` (annotated / propagated) per object."""
        from ..formats.rle import rle_encode

        def read(p, s) -> list[dict[str, Any]]:
            return [{"frame_idx": i, "masks": {str(k): rle_encode(m) for k, m in objs.items()},
                     "confidence": {str(k): s.objects[k].confidence.get(i, 1.0) for k in objs},
                     "sources": {str(k): "annotated" if i in s.objects[k].annotations else "propagated"
                                 for k in objs}}
                    for i, objs in p.masks(s)]
        return self.video_read(rec, read)

    def video_suggest(self, rec: SessionRecord, obj_id: int | None = None) -> Any:
        """``suggest_frame``: the ``ivos.FrameSuggestion`` (the frame most likely wrong)."""
        return self.video_read(rec, lambda p, s: p.suggest_frame(s, obj_id))

    def video_export(self, rec: SessionRecord, fmt: str) -> tuple[Path, str]:
        """Export ``fmt`` (``ivos.serve.exports``) of the session's current revision: the blob
        ``sessions/<id>/exports/<rev>-<fmt>.<ext>`` (written on the first request, by any
        process; older revisions' exports are deleted then); returns (a local path of it, media
        type). 409 while the session has a job."""
        if fmt not in EXPORT_FORMATS:
            raise ApiError(422, "invalid_request", f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
        job = self.store.live_job(rec.id, stale_s=self.config.job_stale_s)
        if job is not None:
            raise busy(rec.id, job.id)
        prefix = f"sessions/{rec.id}/exports/"
        self.require_ready()
        with self.locks(rec.id):
            rec = self._fresh(rec)
            name = f"{rec.rev}-{fmt}"
            existing = self.blobs.list(prefix)
            for blob in existing:
                if blob.key[len(prefix):].startswith(name + "."):
                    return self.blobs.fetch(blob.key), export_media(fmt, blob.key)
            state = self.video_state(rec)
            folder = self.blobs.path(prefix.rstrip("/"))
            folder.mkdir(parents=True, exist_ok=True)
            path, media = invalid_to_422(lambda: write_export(fmt, self.video_predictor(), state, folder,
                                                              name=f".{name}-{secrets.token_hex(4)}"))
            key = f"{prefix}{name}{path.suffix}"
            try:
                path.replace(self.blobs.path(key))
                self.blobs.put_file(key, self.blobs.path(key))
            except BaseException as e:
                path.unlink(missing_ok=True)
                self.discard(key, e)
                raise
            for blob in existing:  # exports of older revisions
                if not blob.key[len(prefix):].startswith(f"{rec.rev}-"):
                    self.discard(blob.key)
            return self.blobs.path(key), media

    # ---- jobs ----------------------------------------------------------------------------
    def job(self, rec: SessionRecord, job_id: str) -> JobRecord:
        """Job ``job_id`` of the session; 404 for an unknown id or another session's job."""
        job = self.store.get_job(job_id) if job_id.startswith("job_") else None
        if job is None or job.session_id != rec.id:
            raise not_found("job", job_id)
        return job

    def last_job(self, rec: SessionRecord) -> JobRecord | None:
        return self.store.last_job(rec.id)


def state_key_of(session_id: str, rev: int) -> str:
    """A new blob key for revision ``rev``'s state file (random: never two writers on one key)."""
    return f"sessions/{session_id}/state-{rev}-{secrets.token_hex(4)}.ivs"


def export_media(fmt: str, key: str) -> str:
    """The media type of export ``fmt`` stored as ``key`` (the sticker is APNG where the
    server's Pillow writes no WebP)."""
    if fmt == "sticker":
        return "image/webp" if key.endswith(".webp") else "image/apng"
    return EXPORT_FORMATS[fmt][0]


def refers_to(rec: SessionRecord, key: str) -> bool:
    """Whether session ``rec`` needs blob ``key``: its upload (or a frame of it), its current
    state, an export of its current revision."""
    if key == rec.media or key.startswith(rec.media + "/") or key == rec.state_file:
        return True
    return key.startswith(f"sessions/{rec.id}/exports/{rec.rev}-")


def invalid_to_422(fn: Callable[[], Any]) -> Any:
    """``fn()``, with the library's ``InvalidInput`` (naming the argument) as a 422."""
    import ivos

    try:
        return fn()
    except ivos.InvalidInput as e:
        raise ApiError(422, "invalid_input", str(e)) from None


def coordinate(name: str, value: Any, limit: int, axis: str) -> float:
    """A click coordinate: a finite number with 0 <= value < limit (continuous pixels, as
    ``ImagePredictor.add_click``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value < limit:
        raise ApiError(422, "invalid_input", f"{name} must be a {axis} inside the image, 0 <= {name} < {limit}, "
                       f"got {value!r}")
    return float(value)


def label(name: str, value: Any) -> bool:
    """true/false or 1/0; anything else ("no", 2, 0.7) is refused, never guessed."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ApiError(422, "invalid_input", f"{name} must be true/false (or 1/0), got {value!r}")


def point_array(points: list) -> np.ndarray:
    """JSON points [[x, y], ...] -> float64 (N, 2) (an empty list -> (0, 2)); 422 when ragged."""
    try:
        arr = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        raise ApiError(422, "invalid_input", "points must be a list of [x, y] pairs of numbers") from None
    return arr.reshape(0, 2) if arr.size == 0 else arr
