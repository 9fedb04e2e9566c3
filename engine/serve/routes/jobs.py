"""Propagation jobs of a video session: start one (202; 409 while the session has one, 429
when the job queue is full), read it, cancel it, and follow its progress as Server-Sent Events
(``sse-starlette``): ``event: progress`` whenever status, stage or progress moved, then one
``event: end`` with the final job (``data``: the job as JSON, as ``GET .../jobs/{job_id}``;
``{"status": "deleted"}`` when the session went meanwhile); a comment line every
``KEEPALIVE_S`` keeps proxies from closing a quiet stream."""
from __future__ import annotations

from typing import Any, AsyncIterator

import anyio
from fastapi import APIRouter
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from ..deps import ServiceDep, VideoSession
from ..jobs import cancel as cancel_job
from ..jobs import start_propagation
from ..schemas import JobOut, PropagateIn, errors
from ..service import Service
from ..store import FINAL_JOB_STATES, StoreUnavailable

router = APIRouter(prefix="/v1/videos/{session_id}", tags=["jobs"], responses=errors(401, 404, 422))

EVENT_POLL_S = 0.2
"""How often the event stream looks at the job's progress in the store."""
KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing a quiet event stream."""


@router.post("/propagate", status_code=202, response_model=JobOut, responses=errors(409, 429, 503))
async def propagate(rec: VideoSession, service: ServiceDep, body: PropagateIn = PropagateIn()) -> JobOut:
    """Starts propagation as a background job: fine-tunes each annotated object (when its
    annotations changed), then propagates over the frames. Returns the queued job at once."""
    job = await run_in_threadpool(start_propagation, service, rec, start_frame_idx=body.start_frame_idx,
                                  finetune=body.finetune)
    return JobOut.of(job)


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, rec: VideoSession, service: ServiceDep) -> JobOut:
    """The job's status and progress."""
    return JobOut.of(service.job(rec, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: str, rec: VideoSession, service: ServiceDep) -> JobOut:
    """Asks the job to stop (seen between two frames or fine-tuning steps; the frames done
    are kept)."""
    job = service.job(rec, job_id)
    cancel_job(service, job)
    return JobOut.of(service.job(rec, job_id))


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse,
            responses={200: {"description": "Server-Sent Events until the job ends: 'progress' events, then one "
                                            "'end'; each data is the job as JSON (JobOut)",
                             "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/JobOut"}}}}})
async def job_events(job_id: str, rec: VideoSession, service: ServiceDep) -> EventSourceResponse:
    """The job's progress as Server-Sent Events until it ends."""
    job = await run_in_threadpool(service.job, rec, job_id)
    # "\n" line ends: the editor's reader (engine/web/api.js) splits events at blank lines
    return EventSourceResponse(events(service, job.id), ping=KEEPALIVE_S, sep="\n")


async def events(service: Service, job_id: str) -> AsyncIterator[dict[str, Any]]:
    """The job's changes, polled from the store (any process may run the job), as
    ``EventSourceResponse`` items (encoded with the response's line ends)."""
    last = None
    while True:
        try:
            current = await run_in_threadpool(service.store.get_job, job_id)
        except StoreUnavailable:  # the database is away for a while: the stream waits for it
            await anyio.sleep(EVENT_POLL_S)
            continue
        if current is None:
            yield {"event": "end", "data": '{"status": "deleted"}'}
            return
        key = (current.status, current.stage, current.done, current.total, current.frame_idx)
        if key != last:
            last = key
            final = current.status in FINAL_JOB_STATES
            yield {"event": "end" if final else "progress", "data": JobOut.of(current).model_dump_json()}
            if final:
                return
        await anyio.sleep(EVENT_POLL_S)
