"""Background jobs: propagation of a video session (fine-tune each object's OSVOS head on its
annotations when they changed, then ``propagate_in_video`` over the frames), one job per
session, on the bounded job pool.

Progress (stage, done/total, the last frame) goes to the store as it advances (at most every
``PROGRESS_S``), so any process or Ray replica can stream it (``/events``). The state is
committed after fine-tuning and then every ``checkpoint_s`` seconds, so a crash (SIGKILL
included) loses at most that much work: the head and the masks of the frames done are in the
store, the job shows "interrupted", and running it again finishes it (fine-tuning is not
repeated when the annotations did not change). With ``resume_jobs`` (``ivos serve --ray``) a
surviving server takes the job over once its heartbeat is ``job_stale_s`` old and runs it
again itself (``take_over_jobs``): same job id, so a client following it sees it finish. Cancel is seen between two frames or two
fine-tuning steps; the frames done so far are kept.

While the store is unavailable (a database restarting, ``StoreUnavailable``), a running job
goes on: progress writes and checkpoints are skipped until it is back, and the final status is
kept in memory and written by the heartbeat thread then (``Service.save_job_state``).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from .errors import ApiError, busy, queue_full
from .service import Service, invalid_to_422, new_id
from .store import Busy, JobRecord, SessionRecord, StoreUnavailable

log = logging.getLogger("ivos.serve")

PROGRESS_S = 0.1
"""Least time between two progress writes (each is one small store transaction)."""
FINAL_SAVE_S = 600.0
"""How long a finished job waits for an unavailable store to save its state (then it fails)."""
MAX_RESUMES = 2
"""A job whose server died is taken over by another server (``ServeConfig.resume_jobs``) at
most this many times (a job that kills its server is not passed around for ever)."""
STORE_BACKOFF_S = 5.0
"""After a progress write or cancel check the store refused, the job waits this long before the
next one (it goes on propagating meanwhile)."""


class Cancelled(Exception):
    """Raised inside the job when its cancel flag is seen."""


def start_propagation(service: Service, rec: SessionRecord, *, start_frame_idx: int | None,
                      finetune: bool) -> JobRecord:
    """Creates the job row (409 when the session has a live job) and queues it (429 when the
    job pool is full: then no row is left behind)."""
    service.require_ready()
    n = rec.num_frames
    if start_frame_idx is not None and not (isinstance(start_frame_idx, int) and 0 <= start_frame_idx < n):
        raise ApiError(422, "invalid_input", f"start_frame_idx must be a frame index 0 <= start_frame_idx < {n}, "
                       f"got {start_frame_idx!r}")
    now = time.time()
    total = n if start_frame_idx is None else n - start_frame_idx
    job = JobRecord(new_id("job_"), rec.id, "propagate", "queued", "queued", 0, total, None, None,
                    {"start_frame_idx": start_frame_idx, "finetune": bool(finetune)}, now, now, now,
                    service.instance, False)
    live = service.store.live_job(rec.id, stale_s=service.config.job_stale_s)
    if live is not None:  # the more specific answer first: this session is busy
        raise busy(rec.id, live.id)
    pool = service.jobs_pool
    if pool.depth >= pool.limit:  # checked first: no row is left for a refused job
        raise queue_full(pool.name, pool.retry_after)
    try:
        service.store.create_job(job, stale_s=service.config.job_stale_s)
    except Busy as e:
        raise busy(rec.id, e.job_id) from None
    try:
        service.jobs_pool.submit(run_propagation, service, job)
    except ApiError:
        service.store.update_job(job.id, status="failed", error="the job queue was full")
        raise
    return job


def take_over_jobs(service: Service) -> list[JobRecord]:
    """The heartbeat's part with ``resume_jobs``: takes over the jobs of dead servers (no
    heartbeat for ``job_stale_s``: another replica, worker or machine) as many as this
    server's job pool has room for, and runs them again here. A resumed job starts from its
    session's stored state: its last checkpoint, with the heads saved after fine-tuning (not
    tuned again) and the frames done; propagation starts again from its first frame."""
    if not service.ready:
        return []
    pool = service.jobs_pool
    taken = service.store.take_over_jobs(service.instance, older_than=time.time() - service.config.job_stale_s,
                                         limit=max(0, pool.limit - pool.depth), max_resumes=MAX_RESUMES)
    for job in taken:
        log.warning("job %s of session %s: its server stopped (no heartbeat for %.0f s): resumed here (take-over %d)",
                    job.id, job.session_id, service.config.job_stale_s, job.params.get("resumed", 0))
        try:
            pool.submit(run_propagation, service, job)
        except ApiError:
            service.store.update_job(job.id, status="interrupted", error="its server stopped (no heartbeat) and "
                                     "the job queue here was full: start it again")
    return taken


def cancel(service: Service, job: JobRecord) -> None:
    """Asks the job to stop (seen between frames, by whichever process runs it)."""
    service.cancels.add(job.id)
    if job.status in ("queued", "running"):
        service.store.update_job(job.id, cancel=1)


def run_propagation(service: Service, job: JobRecord) -> None:
    """The job body (on a job-pool thread). Never raises: the outcome is the job's status."""
    store, sid = service.store, job.session_id
    metrics = service.metrics
    progress = _Progress(service, job)
    status, error = "done", None
    pinned = False
    try:
        row = store.get_job(job.id)
        if row is None or row.status != "queued" or row.cancel:
            raise Cancelled  # cancelled while queued, or taken as dead meanwhile
        progress.set(status="running", stage="load", done=0)
        with service.locks(sid):
            rec = store.get_session(sid)
            if rec is None:
                raise Cancelled  # deleted meanwhile
            state = service.video_state(rec)
            service.videos.pin(sid)
            pinned = True
        pred = service.video_predictor()
        tracks = [state.objects[k] for k in state.obj_ids if state.objects[k].annotations]
        if not tracks:
            raise ApiError(422, "invalid_input", "nothing to propagate: annotate a frame with points or a mask first")
        if job.params.get("finetune", True) and pred.settings.finetune.quick_steps == 0:
            # (with the quick start, propagate_in_video fine-tunes: its first frame comes first)
            for track in tracks:
                if track.head is not None and track.head_digest == track.annotation_digest():
                    continue  # tuned on these annotations already (e.g. a re-run after a crash)
                progress.set(stage=f"finetune:{track.obj_id}", done=0, total=0)
                with service.locks(sid):
                    pred.finetune(state, track.obj_id, progress=progress.finetune_step)
                    checkpoint(service, job, state)
        start = job.params.get("start_frame_idx")
        frames = invalid_to_422(lambda: pred.propagate_in_video(state, start_frame_idx=start,
                                                                finetune=job.params.get("finetune", True)))
        progress.set(stage="propagate", done=0, total=job.total)
        last_save = time.monotonic()
        done = 0
        while True:
            progress.check_cancel()
            with service.locks(sid):
                result = next(frames, None)
                if result is None:
                    break
                done += 1
                if time.monotonic() - last_save >= service.config.checkpoint_s:
                    checkpoint(service, job, state)
                    last_save = time.monotonic()
            if metrics is not None and "propagated" in result.sources.values():
                metrics.frame_ms.observe(result.timings.total_ms)
            progress.frame(done, result.frame_idx)
    except Cancelled:
        status = "cancelled"
    except ApiError as e:
        status, error = "failed", e.message
    except Exception as e:  # reported in the job, the server goes on
        log.exception("job %s failed", job.id)
        status, error = "failed", f"{type(e).__name__}: {e}"
    finally:
        try:
            if pinned:
                save_final_state(service, job, state)  # the frames done so far are kept
        except Exception as e:
            log.exception("job %s: saving the state failed", job.id)
            status, error = "failed", f"saving the state failed: {type(e).__name__}: {e}"
        if pinned:
            service.videos.unpin(sid)
        service.cancels.discard(job.id)
        progress.set(status=status, error=error, force=True)
        if metrics is not None:
            metrics.jobs.labels(job.kind, status).inc()


def checkpoint(service: Service, job: JobRecord, state: Any) -> None:
    """Commits the job's state (call inside the session lock); skipped while the store is
    unavailable (the state stays in memory: the next checkpoint or the final save stores it)."""
    try:
        rec = service.store.get_session(job.session_id)
        if rec is not None:
            service.commit_state(rec, state)
    except StoreUnavailable as e:
        log.warning("job %s: checkpoint skipped: %s", job.id, e)


def save_final_state(service: Service, job: JobRecord, state: Any) -> None:
    """Commits the job's final state, waiting for the store while it is unavailable (up to
    ``FINAL_SAVE_S``, or until the server stops): a propagation finished while the database
    restarts is not lost."""
    deadline = time.monotonic() + FINAL_SAVE_S
    while True:
        try:
            with service.locks(job.session_id):
                rec = service.store.get_session(job.session_id)
                if rec is not None:  # deleted meanwhile: nothing to keep
                    service.commit_state(rec, state)
            return
        except StoreUnavailable as e:
            if time.monotonic() >= deadline or service.stopping:
                raise
            log.warning("job %s: the final state waits for the store: %s", job.id, e)
            time.sleep(1.0)


class _Progress:
    """Throttled progress writes and cancel checks of one job."""

    def __init__(self, service: Service, job: JobRecord):
        self.service, self.job = service, job
        self._last = 0.0
        self._fields: dict[str, Any] = {}

    def set(self, *, force: bool = False, **fields: Any) -> None:
        """Writes the fields (throttled). The final write (``force``) is never lost: kept for the
        heartbeat when the store is unavailable; other writes wait for the next one then."""
        self._fields.update(fields)
        now = time.monotonic()
        if force or "status" in fields or "stage" in fields or now - self._last >= PROGRESS_S:
            if force:
                self.service.save_job_state(self.job.id, **self._fields)
            else:
                try:
                    self.service.store.update_job(self.job.id, **self._fields)
                except StoreUnavailable:
                    self._last = now + STORE_BACKOFF_S
                    return
            self._fields = {}
            self._last = now

    def check_cancel(self) -> None:
        if self.job.id in self.service.cancels:
            raise Cancelled
        if time.monotonic() - self._last >= PROGRESS_S:  # another process may have set the flag
            try:
                row = self.service.store.get_job(self.job.id)
            except StoreUnavailable:
                self._last = time.monotonic() + STORE_BACKOFF_S
                return  # seen at a later check
            if row is None or row.cancel:
                raise Cancelled

    def frame(self, done: int, frame_idx: int) -> None:
        self.set(done=done, frame_idx=frame_idx, frames_done=done)

    def finetune_step(self, stage: str, done: int, total: int) -> None:
        """``VideoPredictor.finetune``'s progress callback (its stage: "features" or "steps")."""
        self.check_cancel()
        self.set(done=done, total=total)
