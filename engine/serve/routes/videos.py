"""Video sessions (``ivos.VideoPredictor`` over HTTP): upload (a video file or frames), points,
masks, refine, undo, objects, masks per frame or for every frame, the suggested frame, exports,
delete. Propagation jobs are in ``ivos.serve.routes.jobs``."""
from __future__ import annotations

import shutil
from typing import Annotated, Optional

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from ..deps import MaskFormats, Owner, ServiceDep, VideoSession
from ..errors import ApiError
from ..exports import EXPORT_FORMATS
from ..schemas import (AllMasksOut, FrameMasksOut, FrameObjIn, FrameOut, JobOut, MaskEditIn, MaskOut, PointsIn,
                       RefineIn, RemovedOut, SessionOut, SuggestionOut, VideoResetOut, VideoSessionOut, VideoUndoOut,
                       errors)

router = APIRouter(prefix="/v1/videos", tags=["videos"], responses=errors(401, 404, 422, 429, 503))

EXPORT_MEDIA = sorted({media for media, _ in EXPORT_FORMATS.values()} | {"image/apng"})
"""What an export is sent as (the sticker is APNG where the server's Pillow writes no WebP)."""


def _copy(upload: UploadFile, path) -> None:
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)


@router.post("", status_code=201, response_model=SessionOut, response_model_exclude_unset=True,
             responses=errors(400, 413, 415, 501))
async def create_video(
        who: Owner, service: ServiceDep,
        video: Annotated[Optional[UploadFile], File(description="a video file (mp4, webm, ...)")] = None,
        frames: Annotated[Optional[list[UploadFile]], File(description="image files, in order")] = None,
        fps: Annotated[Optional[float], Form(description="frame rate of frames (default 25), or to override "
                                                         "the file's")] = None) -> SessionOut:
    """A new session of a video file or of frames (every frame decoded before it exists)."""
    if (video is None) == (not frames):
        raise ApiError(422, "invalid_request", "send exactly one of: a 'video' file, or one or more 'frames' files")
    if video is not None:
        path = service.temp_path("upload")
        await run_in_threadpool(_copy, video, path)
        try:
            rec = await service.requests.run(service.create_video, who, video=path, fps=fps)
        finally:
            path.unlink(missing_ok=True)
    else:
        datas = [await f.read() for f in frames]  # the body limit bounds them
        rec = await service.requests.run(service.create_video, who, frames=datas, fps=fps)
    return SessionOut.of(rec)


@router.get("/{session_id}", response_model=VideoSessionOut, response_model_exclude_unset=True)
async def get_video(rec: VideoSession, service: ServiceDep) -> VideoSessionOut:
    """The session: objects (clicks, annotated frames, masks, fine-tuned) and its last job."""
    objects = await service.requests.run(service.video_objects, rec)
    job = await run_in_threadpool(service.last_job, rec)
    return VideoSessionOut.of(rec, objects=objects, job=None if job is None else JobOut.of(job))


@router.post("/{session_id}/points", response_model=FrameOut, response_model_exclude_unset=True,
             responses=errors(409))
async def add_points(body: PointsIn, rec: VideoSession, fmt: MaskFormats, service: ServiceDep) -> FrameOut:
    """``add_new_points``: clicks on one object on one frame."""
    result = await service.requests.run(service.video_add_points, rec, body.frame_idx, body.obj_id, body.points,
                                        body.labels, clear_old_points=body.clear_old_points)
    return FrameOut.of(result, fmt)


@router.post("/{session_id}/mask", response_model=FrameOut, response_model_exclude_unset=True,
             responses=errors(409))
async def add_mask(body: MaskEditIn, rec: VideoSession, fmt: MaskFormats, service: ServiceDep) -> FrameOut:
    """``add_new_mask``: one object's mask on one frame."""
    mask = body.mask.decode(rec.height, rec.width, "mask")
    result = await service.requests.run(service.video_add_mask, rec, body.frame_idx, body.obj_id, mask)
    return FrameOut.of(result, fmt)


@router.post("/{session_id}/refine", response_model=FrameOut, response_model_exclude_unset=True,
             responses=errors(409))
async def refine(body: RefineIn, rec: VideoSession, fmt: MaskFormats, service: ServiceDep) -> FrameOut:
    """``refine``: a correction on a propagated frame."""
    result = await service.requests.run(service.video_refine, rec, body.frame_idx, body.obj_id, body.points,
                                        body.labels)
    return FrameOut.of(result, fmt)


@router.post("/{session_id}/undo", response_model=VideoUndoOut, response_model_exclude_unset=True,
             responses=errors(409))
async def undo(body: FrameObjIn, rec: VideoSession, fmt: MaskFormats, service: ServiceDep) -> VideoUndoOut:
    """Undoes the last click or mask of one object on one frame."""
    result = await service.requests.run(service.video_undo, rec, body.frame_idx, body.obj_id)
    return VideoUndoOut(result=None if result is None else FrameOut.of(result, fmt))


@router.delete("/{session_id}/objects/{obj_id}", response_model=RemovedOut, responses=errors(409))
async def remove_object(obj_id: int, rec: VideoSession, service: ServiceDep) -> RemovedOut:
    await service.requests.run(service.video_remove_object, rec, obj_id)
    return RemovedOut(removed=obj_id)


@router.post("/{session_id}/reset", response_model=VideoResetOut, responses=errors(409))
async def reset(rec: VideoSession, service: ServiceDep) -> VideoResetOut:
    """Removes every object (the frames stay)."""
    await service.requests.run(service.video_reset, rec)
    return VideoResetOut(objects=[])


@router.get("/{session_id}/frames/{frame_idx}/masks", response_model=FrameMasksOut,
            response_model_exclude_unset=True)
async def frame_masks(frame_idx: int, rec: VideoSession, fmt: MaskFormats, service: ServiceDep) -> FrameMasksOut:
    """Every object's mask on one frame (overlaps resolved)."""
    masks = await service.requests.run(service.video_frame_masks, rec, frame_idx)
    return FrameMasksOut(frame_idx=frame_idx, masks={str(k): MaskOut.of(m, fmt) for k, m in masks.items()})


@router.get("/{session_id}/masks", response_model=AllMasksOut)
async def all_masks(rec: VideoSession, service: ServiceDep) -> AllMasksOut:
    """Every frame's masks as COCO RLE, with confidence and source per object."""
    frames = await service.requests.run(service.video_masks, rec)
    return AllMasksOut(num_frames=rec.num_frames, frames=frames)


@router.get("/{session_id}/suggest", response_model=SuggestionOut)
async def suggest(rec: VideoSession, service: ServiceDep,
                  obj_id: Annotated[Optional[int], Query(description="one object (default: all)")] = None
                  ) -> SuggestionOut:
    """``suggest_frame``: the frame most likely wrong, to correct next."""
    return SuggestionOut.of(await service.requests.run(service.video_suggest, rec, obj_id))


@router.get("/{session_id}/export", response_class=Response,
            responses={200: {"content": {m: {"schema": {"type": "string", "format": "binary"}} for m in EXPORT_MEDIA},
                             "description": "the export as a file (Content-Disposition names it)"},
                       **errors(409)})
async def export(rec: VideoSession, service: ServiceDep,
                 format: Annotated[str, Query(description="png-zip, coco, rle or sticker",
                                              json_schema_extra={"enum": list(EXPORT_FORMATS)})] = "png-zip"
                 ) -> FileResponse:
    """The masks of every frame as a file: a ZIP of PNGs, COCO JSON, RLE JSON or an animated
    sticker (needs a mask on every frame: 409 otherwise, and while a job runs)."""
    path, media = await service.exports.run(service.video_export, rec, format)
    return FileResponse(path, media_type=media, filename=f"{rec.id}-{format}{path.suffix}")


@router.delete("/{session_id}", status_code=204, response_class=Response)
async def delete_video(rec: VideoSession, service: ServiceDep) -> Response:
    """Deletes the session, its files and masks (a running job is cancelled)."""
    await service.requests.run(service.delete, rec)
    return Response(status_code=204)
