"""The FastAPI app of ``ivos serve`` (OpenAPI schema at ``/openapi.json``, docs at ``/docs``).

Endpoints (``{id}`` a session id; every ``/v1`` route needs ``Authorization: Bearer KEY`` when
the server has keys, and sees only the sessions that key made):

Image sessions (``ivos.ImagePredictor`` over HTTP)::

    POST   /v1/images                    multipart image=@photo.jpg -> 201 {session_id, width, height}
    GET    /v1/images/{id}               clicks and current mask
    PUT    /v1/images/{id}/image         multipart image: set_image (clicks forgotten)
    POST   /v1/images/{id}/clicks        {x, y, positive} -> mask, timings      (add_click)
    POST   /v1/images/{id}/undo          -> the mask before the last click, or null
    POST   /v1/images/{id}/reset
    POST   /v1/images/{id}/predict       {points, labels, mask_input?} (stateless predict)
    DELETE /v1/images/{id}

Video sessions (``ivos.VideoPredictor`` over HTTP)::

    POST   /v1/videos                    multipart video=@clip.mp4 | frames=@0.jpg frames=@1.jpg ..., fps?
    GET    /v1/videos/{id}               objects, annotated frames, last job
    POST   /v1/videos/{id}/points        {frame_idx, obj_id, points, labels, clear_old_points?}
    POST   /v1/videos/{id}/mask          {frame_idx, obj_id, mask: {rle|png}}
    POST   /v1/videos/{id}/refine        {frame_idx, obj_id, points, labels}
    POST   /v1/videos/{id}/undo          {frame_idx, obj_id}
    DELETE /v1/videos/{id}/objects/{obj_id}
    POST   /v1/videos/{id}/reset
    POST   /v1/videos/{id}/propagate     {start_frame_idx?, finetune?} -> 202 job (409 busy, 429 queue full)
    GET    /v1/videos/{id}/jobs/{job}          status and progress
    GET    /v1/videos/{id}/jobs/{job}/events   progress as Server-Sent Events until it ends
    POST   /v1/videos/{id}/jobs/{job}/cancel
    GET    /v1/videos/{id}/frames/{frame}/masks   every object's mask on a frame
    GET    /v1/videos/{id}/masks         every frame's masks (COCO RLE)
    GET    /v1/videos/{id}/suggest?obj_id=    the frame most likely wrong
    GET    /v1/videos/{id}/export?format=png-zip|coco|rle|sticker
    DELETE /v1/videos/{id}

    GET    /v1/sessions?kind=image|video   this key's sessions, most recently changed first

Service: ``GET /healthz`` (the process answers), ``GET /readyz`` (models loaded, store
reachable), ``GET /metrics`` (Prometheus; needs a key when the server has keys).

Masks come back as ``{"rle": COCO uncompressed RLE, "png"?: base64, "area", "bbox"}``
(``?mask_format=rle|png|rle,png``). Errors are ``{"error": {"code", "message", ...}}`` with
the status of ``ivos.serve.errors``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import asdict
from typing import Any, Literal, Optional, Union

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..formats.codec import MASK_FORMATS, InvalidMask, decode_mask, encode_mask, encode_probabilities
from .config import ServeConfig
from .errors import ApiError, conflict, limit_exceeded, not_found
from .exports import write_export
from .jobs import cancel as cancel_job
from .jobs import start_propagation
from .metrics import Metrics
from .service import Service, owner_of, point_array
from .store import FINAL_JOB_STATES, Conflict, JobRecord, SessionRecord

log = logging.getLogger("ivos.serve")

Number = Union[StrictInt, StrictFloat]
Label = Union[StrictBool, StrictInt]
EVENT_POLL_S = 0.2
"""How often the event stream looks at the job's progress in the store."""
KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing a quiet event stream."""


# ---- request bodies ----------------------------------------------------------------------
class ClickIn(BaseModel):
    x: Number = Field(description="column in original pixels, 0 <= x < width")
    y: Number = Field(description="row in original pixels, 0 <= y < height")
    positive: Label = Field(True, description="true/1 on the object, false/0 background")


class PredictIn(BaseModel):
    points: list[list[Number]] = Field(description="[[x, y], ...] original pixels")
    labels: list[Label] = Field(description="1/0 per point")
    mask_input: Optional[dict] = Field(None, description="{rle: {size, counts}} or {png: base64}; null = none")


class PointsIn(BaseModel):
    frame_idx: StrictInt
    obj_id: StrictInt = 1
    points: list[list[Number]]
    labels: list[Label]
    clear_old_points: StrictBool = False


class RefineIn(BaseModel):
    frame_idx: StrictInt
    obj_id: StrictInt = 1
    points: list[list[Number]]
    labels: list[Label]


class MaskIn(BaseModel):
    frame_idx: StrictInt
    obj_id: StrictInt = 1
    mask: dict = Field(description="{rle: {size: [H, W], counts: [...]}} or {png: base64}")


class FrameObjIn(BaseModel):
    frame_idx: StrictInt
    obj_id: StrictInt = 1


class PropagateIn(BaseModel):
    start_frame_idx: Optional[StrictInt] = None
    finetune: StrictBool = True


# ---- responses ---------------------------------------------------------------------------
def click_json(result: Any, formats: tuple[str, ...], *, clicks: int | None = None,
               probabilities: bool = False) -> dict:
    out = {"mask": encode_mask(result.mask, formats), "timings": asdict(result.timings), "backend": result.backend,
           "box": [result.box.x0, result.box.y0, result.box.width, result.box.height]}
    if clicks is not None:
        out["clicks"] = clicks
    if probabilities:
        out["probabilities_png"] = encode_probabilities(result.probabilities)
    return out


def frame_json(result: Any, formats: tuple[str, ...]) -> dict | None:
    if result is None:
        return None
    return {"frame_idx": result.frame_idx, "obj_id": result.obj_id, "mask": encode_mask(result.mask, formats),
            "confidence": result.confidence, "source": result.source, "timings": asdict(result.timings)}


def job_json(job: JobRecord) -> dict:
    return {"job_id": job.id, "session_id": job.session_id, "kind": job.kind, "status": job.status,
            "stage": job.stage, "done": job.done, "total": job.total, "frame_idx": job.frame_idx,
            "frames_done": job.frames_done, "error": job.error, "params": job.params, "created": job.created,
            "updated": job.updated, "cancel_requested": job.cancel}


def session_json(rec: SessionRecord) -> dict:
    out = {"session_id": rec.id, "kind": rec.kind, "width": rec.width, "height": rec.height,
           "created": rec.created, "updated": rec.updated, "rev": rec.rev}
    if rec.kind == "video":
        out.update(num_frames=rec.num_frames, fps=rec.fps)
    return out


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


# ---- middleware --------------------------------------------------------------------------
class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413 naming the limit: at once from
    ``Content-Length``, or as soon as a chunked body passes it (pure ASGI: nothing buffered)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        err = limit_exceeded("max_upload_bytes", f"the request body is larger than {self.limit:,} bytes",
                             flag="max-upload-mb")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await error_response(err)(scope, receive, send)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(err)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge as e:
            if not started:
                await error_response(e.error)(scope, receive, send)


class _TooLarge(Exception):
    """A streamed body passed the limit (answered 413 by the app's handler, or by BodyLimit
    when the app let it through)."""

    def __init__(self, error: ApiError):
        super().__init__(error.message)
        self.error = error


class RequestMetrics:
    """Counts requests and times them per route template (pure ASGI; streams included)."""

    def __init__(self, app, metrics: Metrics, instance: str):
        self.app, self.metrics = app, metrics
        self.instance = (b"x-ivos-instance", instance.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def tracking_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # which process answered: a worker or a Ray replica (sessions move between them)
                message = {**message, "headers": [*message.get("headers", []), self.instance]}
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            self.metrics.latency.labels(scope["method"], path).observe(time.perf_counter() - t0)


# ---- the app -----------------------------------------------------------------------------
def parse_formats(text: str, name: str = "mask_format") -> tuple[str, ...]:
    """``"rle"``, ``"png"`` or ``"rle,png"`` -> the tuple; 422 naming ``name`` otherwise."""
    formats = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [f for f in formats if f not in MASK_FORMATS]
    if bad or not formats:
        raise ApiError(422, "invalid_request", f"{name} must be rle, png or rle,png; got {text!r}")
    return formats


def request_mask(value: Any, height: int, width: int, name: str) -> np.ndarray:
    """A mask payload of a request (``ivos.formats.codec.decode_mask``); 422 ``invalid_mask``."""
    try:
        return decode_mask(value, height, width, name)
    except InvalidMask as e:
        raise ApiError(422, "invalid_mask", str(e)) from None


def create_app(config: ServeConfig, *, load_in_background: bool = True) -> FastAPI:
    """The ASGI app for ``config``: one ``Service`` (models loaded once, in a background thread
    unless ``load_in_background`` is False), routes, error handlers, metrics."""
    import ivos

    service = Service(config)
    metrics = Metrics(service.counts, lambda: {"image": len(service.images), "video": len(service.videos)},
                      lambda: {"requests": service.requests.depth, "jobs": service.jobs_pool.depth,
                               "exports": service.exports.depth})
    service.metrics = metrics
    keys = {owner_of(k) for k in config.api_keys}

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app):
        if load_in_background:
            threading.Thread(target=service.load_models, name="ivos-load", daemon=True).start()
        else:
            service.load_models()
        service.start_heartbeat()
        yield
        service.close()

    app = FastAPI(title="ivos serve", version=ivos.__version__, lifespan=lifespan,
                  description="Interactive video object segmentation over HTTP: image sessions (clicks -> mask) "
                              "and video sessions (clicks, propagation jobs, corrections, exports). See "
                              "the README section 'Serving'.")
    app.state.service = service
    app.state.metrics = metrics

    # ---- errors ---------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_request, err: ApiError):
        return error_response(err)

    @app.exception_handler(_TooLarge)
    async def _too_large(_request, err: "_TooLarge"):  # a chunked body passed the limit while parsed
        return error_response(err.error)

    @app.exception_handler(Conflict)
    async def _conflict(_request, err: Conflict):
        return error_response(conflict(str(err)))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request, err: RequestValidationError):
        problems = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", ""),
                     "type": e.get("type", "")} for e in err.errors()]
        message = "; ".join(f"{p['where']}: {p['problem']}" for p in problems) or "invalid request"
        return error_response(ApiError(422, "invalid_request", message, problems=problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request, err: StarletteHTTPException):
        cause = err.__cause__ or err.__context__
        if isinstance(cause, _TooLarge):  # FastAPI wraps errors while parsing the body as a 400
            return error_response(cause.error)
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "bad_request")
        return error_response(ApiError(err.status_code, code, str(err.detail)))

    @app.exception_handler(Exception)
    async def _internal(request, err: Exception):  # logged; the server goes on
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(ApiError(500, "internal_error", f"internal error ({type(err).__name__}); the request "
                                       "changed nothing it had not committed; see the server log"))

    # ---- auth -----------------------------------------------------------------------------
    def owner(request: Request) -> str:
        if not keys:
            return ""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing_api_key", "this server needs an API key: send 'Authorization: Bearer KEY'",
                           headers={"WWW-Authenticate": "Bearer"})
        who = owner_of(token.strip())
        if who not in keys:
            raise ApiError(401, "invalid_api_key", "the API key is not valid on this server",
                           headers={"WWW-Authenticate": "Bearer"})
        return who

    def image_session(session_id: str, who: str = Depends(owner)) -> SessionRecord:
        return service.session(session_id, who, "image")

    def video_session(session_id: str, who: str = Depends(owner)) -> SessionRecord:
        return service.session(session_id, who, "video")

    def formats(mask_format: str = Query("rle", description="rle, png or rle,png")) -> tuple[str, ...]:
        return parse_formats(mask_format)

    async def read_upload(upload: UploadFile) -> bytes:
        return await upload.read()  # the body limit bounds it

    # ---- service endpoints ----------------------------------------------------------------
    @app.get("/healthz", tags=["service"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"])
    async def readyz():
        try:
            service.store.count_sessions()
        except Exception as e:
            return error_response(ApiError(503, "store_unavailable", f"the store cannot be read: {e}"))
        if not service.ready:
            try:
                service.require_ready()
            except ApiError as e:
                return error_response(e)
        return {"status": "ready", "model": service.click_model.backend, "osvos": service.osvos_model.backend,
                "instance": service.instance}

    @app.get("/metrics", tags=["service"])
    async def metrics_endpoint(_who: str = Depends(owner)):
        body, media = metrics.render()
        return Response(body, media_type=media)

    @app.get("/v1/sessions", tags=["service"])
    async def list_sessions(kind: Optional[Literal["image", "video"]] = Query(None),
                            limit: int = Query(100, ge=1, le=1000), who: str = Depends(owner)):
        """This key's sessions, most recently changed first."""
        records = service.store.list_sessions(who, kind, limit)
        return {"sessions": [session_json(r) for r in records]}

    # ---- image sessions -------------------------------------------------------------------
    @app.post("/v1/images", status_code=201, tags=["images"])
    async def create_image(image: UploadFile = File(..., description="PNG, JPEG, WebP, BMP, TIFF or GIF"),
                           who: str = Depends(owner)):
        data = await read_upload(image)
        rec = await service.requests.run(service.create_image, who, data)
        return session_json(rec)

    @app.get("/v1/images/{session_id}", tags=["images"])
    async def get_image(rec: SessionRecord = Depends(image_session), fmt: tuple = Depends(formats)):
        clicks, mask = await service.requests.run(service.image_state, rec)
        return {**session_json(rec), "clicks": [{"x": x, "y": y, "positive": p} for x, y, p in clicks],
                "mask": None if mask is None else encode_mask(mask, fmt)}

    @app.put("/v1/images/{session_id}/image", tags=["images"])
    async def replace_image(image: UploadFile = File(...), rec: SessionRecord = Depends(image_session)):
        data = await read_upload(image)
        rec = await service.requests.run(service.image_replace, rec, data)
        return session_json(rec)

    @app.post("/v1/images/{session_id}/clicks", tags=["images"])
    async def add_click(body: ClickIn, rec: SessionRecord = Depends(image_session), fmt: tuple = Depends(formats),
                        probabilities: bool = Query(False, description="also the foreground probability as an "
                                                                       "8-bit PNG (p * 255)")):
        result, n = await service.requests.run(service.image_click, rec, body.x, body.y, body.positive)
        return await asyncio.to_thread(click_json, result, fmt, clicks=n, probabilities=probabilities) \
            if probabilities else click_json(result, fmt, clicks=n)

    @app.post("/v1/images/{session_id}/undo", tags=["images"])
    async def undo_click(rec: SessionRecord = Depends(image_session), fmt: tuple = Depends(formats)):
        result, n = await service.requests.run(service.image_undo, rec)
        return {"clicks": n, "mask": None} if result is None else click_json(result, fmt, clicks=n)

    @app.post("/v1/images/{session_id}/reset", tags=["images"])
    async def reset_image(rec: SessionRecord = Depends(image_session)):
        await service.requests.run(service.image_reset, rec)
        return {"clicks": 0}

    @app.post("/v1/images/{session_id}/predict", tags=["images"])
    async def predict(body: PredictIn, rec: SessionRecord = Depends(image_session), fmt: tuple = Depends(formats),
                      probabilities: bool = Query(False)):
        mask = None if body.mask_input is None else request_mask(body.mask_input, rec.height, rec.width, "mask_input")
        points = point_array(body.points)
        result = await service.requests.run(service.image_predict, rec, points, body.labels, mask)
        return click_json(result, fmt, probabilities=probabilities)

    @app.delete("/v1/images/{session_id}", status_code=204, tags=["images"])
    async def delete_image(rec: SessionRecord = Depends(image_session)):
        await service.requests.run(service.delete, rec)
        return Response(status_code=204)

    # ---- video sessions -------------------------------------------------------------------
    @app.post("/v1/videos", status_code=201, tags=["videos"])
    async def create_video(video: Optional[UploadFile] = File(None, description="a video file (mp4, webm, ...)"),
                           frames: Optional[list[UploadFile]] = File(None, description="image files, in order"),
                           fps: Optional[float] = Form(None, description="frame rate of frames (default 25), or "
                                                                         "to override the file's"),
                           who: str = Depends(owner)):
        if (video is None) == (not frames):
            raise ApiError(422, "invalid_request", "send exactly one of: a 'video' file, or one or more 'frames' files")
        if video is not None:
            tmp = service.data_dir / "tmp"
            tmp.mkdir(exist_ok=True)
            path = tmp / f"upload-{secrets.token_hex(8)}"

            def copy():
                with open(path, "wb") as out:
                    shutil.copyfileobj(video.file, out, 1 << 20)
            await asyncio.to_thread(copy)
            try:
                rec = await service.requests.run(lambda: service.create_video(who, video=path, fps=fps))
            finally:
                path.unlink(missing_ok=True)
        else:
            datas = [await read_upload(f) for f in frames]
            rec = await service.requests.run(lambda: service.create_video(who, frames=datas, fps=fps))
        return session_json(rec)

    @app.get("/v1/videos/{session_id}", tags=["videos"])
    async def get_video(rec: SessionRecord = Depends(video_session)):
        def describe(_pred, state):
            objects = []
            for k in state.obj_ids:
                t = state.objects[k]
                objects.append({"obj_id": k, "annotated_frames": sorted(t.annotations),
                                "clicks": {str(i): [[x, y, l] for x, y, l in c] for i, c in sorted(t.clicks.items())},
                                "masked_frames": len(t.masks), "finetuned": t.head is not None})
            return objects
        objects = await service.requests.run(service.video_read, rec, describe)
        job = service.store.last_job(rec.id)
        return {**session_json(rec), "objects": objects, "job": None if job is None else job_json(job)}

    @app.post("/v1/videos/{session_id}/points", tags=["videos"])
    async def add_points(body: PointsIn, rec: SessionRecord = Depends(video_session), fmt: tuple = Depends(formats)):
        points = point_array(body.points)
        result = await service.requests.run(service.video_edit, rec, lambda p, s: p.add_new_points(
            s, body.frame_idx, body.obj_id, points, np.asarray(body.labels), clear_old_points=body.clear_old_points))
        return frame_json(result, fmt)

    @app.post("/v1/videos/{session_id}/mask", tags=["videos"])
    async def add_mask(body: MaskIn, rec: SessionRecord = Depends(video_session), fmt: tuple = Depends(formats)):
        mask = request_mask(body.mask, rec.height, rec.width, "mask")
        result = await service.requests.run(service.video_edit, rec,
                                            lambda p, s: p.add_new_mask(s, body.frame_idx, body.obj_id, mask))
        return frame_json(result, fmt)

    @app.post("/v1/videos/{session_id}/refine", tags=["videos"])
    async def refine(body: RefineIn, rec: SessionRecord = Depends(video_session), fmt: tuple = Depends(formats)):
        points = point_array(body.points)
        result = await service.requests.run(service.video_edit, rec, lambda p, s: p.refine(
            s, body.frame_idx, body.obj_id, points, np.asarray(body.labels)))
        return frame_json(result, fmt)

    @app.post("/v1/videos/{session_id}/undo", tags=["videos"])
    async def undo_video(body: FrameObjIn, rec: SessionRecord = Depends(video_session), fmt: tuple = Depends(formats)):
        result = await service.requests.run(service.video_edit, rec,
                                            lambda p, s: p.undo(s, body.frame_idx, body.obj_id))
        return {"result": frame_json(result, fmt)}

    @app.delete("/v1/videos/{session_id}/objects/{obj_id}", tags=["videos"])
    async def remove_object(obj_id: int, rec: SessionRecord = Depends(video_session)):
        await service.requests.run(service.video_edit, rec, lambda p, s: p.remove_object(s, obj_id))
        return {"removed": obj_id}

    @app.post("/v1/videos/{session_id}/reset", tags=["videos"])
    async def reset_video(rec: SessionRecord = Depends(video_session)):
        await service.requests.run(service.video_edit, rec, lambda p, s: p.reset_state(s))
        return {"objects": []}

    @app.post("/v1/videos/{session_id}/propagate", status_code=202, tags=["videos"])
    async def propagate(body: PropagateIn = PropagateIn(), rec: SessionRecord = Depends(video_session)):
        job = await asyncio.to_thread(start_propagation, service, rec, start_frame_idx=body.start_frame_idx,
                                      finetune=body.finetune)
        return job_json(job)

    def session_job(job_id: str, rec: SessionRecord) -> JobRecord:
        job = service.store.get_job(job_id) if job_id.startswith("job_") else None
        if job is None or job.session_id != rec.id:
            raise not_found("job", job_id)
        return job

    @app.get("/v1/videos/{session_id}/jobs/{job_id}", tags=["videos"])
    async def get_job(job_id: str, rec: SessionRecord = Depends(video_session)):
        return job_json(session_job(job_id, rec))

    @app.post("/v1/videos/{session_id}/jobs/{job_id}/cancel", tags=["videos"])
    async def cancel(job_id: str, rec: SessionRecord = Depends(video_session)):
        job = session_job(job_id, rec)
        cancel_job(service, job)
        return job_json(service.store.get_job(job.id))

    @app.get("/v1/videos/{session_id}/jobs/{job_id}/events", tags=["videos"])
    async def job_events(job_id: str, rec: SessionRecord = Depends(video_session)):
        job = session_job(job_id, rec)

        async def stream():
            last, quiet = None, time.monotonic()
            while True:
                current = service.store.get_job(job.id)
                if current is None:
                    yield "event: end\ndata: {\"status\": \"deleted\"}\n\n"
                    return
                data = job_json(current)
                key = (data["status"], data["stage"], data["done"], data["total"], data["frame_idx"])
                if key != last:
                    last, quiet = key, time.monotonic()
                    final = current.status in FINAL_JOB_STATES
                    yield f"event: {'end' if final else 'progress'}\ndata: {json.dumps(data)}\n\n"
                    if final:
                        return
                elif time.monotonic() - quiet > KEEPALIVE_S:
                    quiet = time.monotonic()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(EVENT_POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/v1/videos/{session_id}/frames/{frame_idx}/masks", tags=["videos"])
    async def frame_masks(frame_idx: int, rec: SessionRecord = Depends(video_session), fmt: tuple = Depends(formats)):
        masks = await service.requests.run(service.video_read, rec, lambda p, s: p.object_masks(s, frame_idx))
        return {"frame_idx": frame_idx, "masks": {str(k): encode_mask(m, fmt) for k, m in masks.items()}}

    @app.get("/v1/videos/{session_id}/masks", tags=["videos"])
    async def all_masks(rec: SessionRecord = Depends(video_session)):
        def read(p, s):
            from ..formats.rle import rle_encode

            return [{"frame_idx": i, "masks": {str(k): rle_encode(m) for k, m in objs.items()},
                     "confidence": {str(k): s.objects[k].confidence.get(i, 1.0) for k in objs},
                     "sources": {str(k): "annotated" if i in s.objects[k].annotations else "propagated"
                                 for k in objs}}
                    for i, objs in p.masks(s)]
        frames = await service.requests.run(service.video_read, rec, read)
        return {"num_frames": rec.num_frames, "frames": frames}

    @app.get("/v1/videos/{session_id}/suggest", tags=["videos"])
    async def suggest(obj_id: Optional[int] = Query(None), rec: SessionRecord = Depends(video_session)):
        s = await service.requests.run(service.video_read, rec, lambda p, st: p.suggest_frame(st, obj_id))
        return {"frame_idx": s.frame_idx, "obj_id": s.obj_id, "score": s.score,
                "scores": [None if not np.isfinite(v) else float(v) for v in s.scores]}

    @app.get("/v1/videos/{session_id}/export", tags=["videos"])
    async def export(format: str = Query("png-zip", description="png-zip, coco, rle or sticker"),
                     rec: SessionRecord = Depends(video_session)):
        tmp = service.data_dir / "tmp" / secrets.token_hex(8)
        tmp.mkdir(parents=True)

        def write():
            job = service.store.live_job(rec.id, stale_s=service.config.job_stale_s)
            if job is not None:
                from .errors import busy

                raise busy(rec.id, job.id)
            return service.video_read(rec, lambda p, s: write_export(format, p, s, tmp, name=rec.id))
        try:
            path, media = await service.exports.run(write)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return FileResponse(path, media_type=media, filename=f"{rec.id}-{format}{path.suffix}",
                            background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))

    @app.delete("/v1/videos/{session_id}", status_code=204, tags=["videos"])
    async def delete_video(rec: SessionRecord = Depends(video_session)):
        await service.requests.run(service.delete, rec)
        return Response(status_code=204)

    # the web editor at / (its page, files and the few read-only routes a browser needs)
    from .web import add_web_routes
    add_web_routes(app, service, owner=owner, video_session=video_session, image_session=image_session,
                   session_json=session_json)

    # ASGI middleware, the last added outermost: metrics see every answer, the body limit too
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics, instance=service.instance)
    return app


def app_from_json(text: str) -> FastAPI:
    """The app of a ``ServeConfig`` given as JSON (``ServeConfig.to_json``)."""
    return create_app(ServeConfig.from_json(text))


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` (``--workers N``): the config comes as JSON in
    ``$IVOS_SERVE_CONFIG`` (``ivos.serve.cli`` sets it)."""
    return app_from_json(os.environ["IVOS_SERVE_CONFIG"])
