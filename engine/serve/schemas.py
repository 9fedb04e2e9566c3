"""The wire format of ``ivos serve`` as pydantic models: request bodies (``...In``) and responses
(``...Out``, each route's ``response_model``), so that ``/openapi.json`` documents every answer.

Masks travel as ``MaskOut`` (COCO uncompressed RLE and/or a base64 PNG, with ``area`` and
``bbox``) and arrive as ``MaskIn`` (exactly one of ``rle`` / ``png``), decoded by the one codec
that ``ivos.Client`` shares (``ivos.formats.codec``). Optional fields of a response are left out
when they do not apply (``png`` unless asked for, ``num_frames`` on an image session, ...): the
routes serialise with ``response_model_exclude_unset``, so a response holds the keys its
builder (``...Out.of``) set.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from ..formats.codec import InvalidMask, decode_mask, encode_mask, encode_probabilities
from ..image.click_pipeline import Timings
from ..video.results import FrameTimings
from .errors import ApiError
from .store import JobRecord, SessionRecord

Number = Union[StrictInt, StrictFloat]
Label = Union[StrictBool, StrictInt]
"""true/false or 1/0 (other integers are refused with a message by the service)."""


# ---- masks -------------------------------------------------------------------------------
class RleIn(BaseModel):
    """COCO uncompressed RLE: column-major run lengths starting with background."""

    size: Annotated[list[StrictInt], Field(min_length=2, max_length=2, description="[H, W]")]
    counts: list[StrictInt] = Field(description="run lengths, summing to H * W")


class MaskIn(BaseModel):
    """A mask a client sends: exactly one of ``rle`` or ``png``."""

    rle: Optional[RleIn] = Field(None, description="COCO uncompressed RLE of the mask")
    png: Optional[StrictStr] = Field(None, description="base64 PNG; nonzero pixels are the object")

    def decode(self, height: int, width: int, name: str) -> np.ndarray:
        """uint8 (height, width) {0, 1}; 422 ``invalid_mask`` naming ``name`` when the payload
        does not decode to a mask of that size."""
        try:
            return decode_mask(self.model_dump(exclude_none=True), height, width, name)
        except InvalidMask as e:
            raise ApiError(422, "invalid_mask", str(e)) from None


MASK_FIELDS = ("mask", "mask_input")
"""Body fields holding a ``MaskIn``: a malformed one is answered ``invalid_mask``, whichever
check (pydantic's or the codec's) finds the problem."""


class RleOut(BaseModel):
    size: list[int] = Field(description="[H, W]")
    counts: list[int] = Field(description="column-major run lengths, starting with background")


class MaskOut(BaseModel):
    """A mask in the formats asked for (``?mask_format=rle|png|rle,png``)."""

    rle: Optional[RleOut] = Field(None, description="COCO uncompressed RLE (with mask_format rle)")
    png: Optional[str] = Field(None, description="base64 8-bit PNG, 0 / 255 (with mask_format png)")
    area: int = Field(description="pixels in the mask")
    bbox: list[int] = Field(description="[x, y, width, height] of the mask")

    @classmethod
    def of(cls, mask: np.ndarray, formats: tuple[str, ...]) -> "MaskOut":
        return cls(**encode_mask(mask, formats))


# ---- requests ----------------------------------------------------------------------------
class ClickIn(BaseModel):
    x: Number = Field(description="column in original pixels, 0 <= x < width")
    y: Number = Field(description="row in original pixels, 0 <= y < height")
    positive: Label = Field(True, description="true/1 on the object, false/0 background")


class PredictIn(BaseModel):
    points: list[list[Number]] = Field(description="[[x, y], ...] original pixels")
    labels: list[Label] = Field(description="1/0 per point")
    mask_input: Optional[MaskIn] = Field(None, description="a prior mask; null = none")


class FrameObjIn(BaseModel):
    frame_idx: StrictInt
    obj_id: StrictInt = 1


class PointsIn(FrameObjIn):
    points: list[list[Number]] = Field(description="[[x, y], ...] original pixels")
    labels: list[Label] = Field(description="1/0 per point")
    clear_old_points: StrictBool = False


class RefineIn(FrameObjIn):
    points: list[list[Number]] = Field(description="[[x, y], ...] original pixels")
    labels: list[Label] = Field(description="1/0 per point")


class MaskEditIn(FrameObjIn):
    mask: MaskIn


class PropagateIn(BaseModel):
    start_frame_idx: Optional[StrictInt] = Field(None, description="null: from the first annotated frame, "
                                                                  "forward then backward")
    finetune: StrictBool = True


# ---- service -----------------------------------------------------------------------------
class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    model: str = Field(description="the click model's backend")
    osvos: str = Field(description="the OSVOS model's backend")
    instance: str = Field(description="this process (also in every response's X-Ivos-Instance header)")


class ErrorDetail(BaseModel):
    """``code`` is stable (for programs), ``message`` is for people; limits add ``limit`` (and
    ``value``), busy sessions ``job_id``, full queues ``pool``, validation ``problems``, an
    unavailable store ``in_doubt`` (the change may have been saved: do not repeat it blindly)."""

    model_config = ConfigDict(extra="allow")
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


ERRORS = {400: "the upload is not what it claims (not an image, corrupt, empty, ...)",
          401: "missing or invalid API key (the server has keys)",
          404: "no such session (or job) for this API key",
          409: "the session has a job running, or changed meanwhile",
          413: "over a limit (the message names it and the server flag that lifts it)",
          415: "an image format the server does not read",
          422: "invalid request (the message names the field and what was wrong)",
          429: "a queue is full: retry after Retry-After seconds",
          501: "the server cannot read video files (PyAV missing)",
          502: "Label Studio could not be reached or refused the task image (the message says which)",
          503: "the models are still loading or the session database is unavailable (both: retry after "
               "Retry-After seconds), or the models failed to load"}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the error answers ``statuses`` (``ErrorOut``)."""
    return {s: {"model": ErrorOut, "description": ERRORS[s]} for s in statuses}


# ---- sessions ----------------------------------------------------------------------------
class SessionOut(BaseModel):
    session_id: str
    kind: Literal["image", "video"]
    width: int
    height: int
    created: float = Field(description="epoch seconds")
    updated: float = Field(description="epoch seconds of the last change")
    rev: int = Field(description="bumped by every change")
    num_frames: Optional[int] = Field(None, description="video sessions only")
    fps: Optional[float] = Field(None, description="video sessions only")

    @classmethod
    def of(cls, rec: SessionRecord, **more: Any) -> "SessionOut":
        """From the session's record; ``more``: the fields of a subclass."""
        if rec.kind == "video":
            more.update(num_frames=rec.num_frames, fps=rec.fps)
        return cls(session_id=rec.id, kind=rec.kind, width=rec.width, height=rec.height, created=rec.created,
                   updated=rec.updated, rev=rec.rev, **more)


class SessionList(BaseModel):
    sessions: list[SessionOut]


# ---- image sessions ----------------------------------------------------------------------
class ClickOut(BaseModel):
    """One prediction: the mask, the view it was predicted in and the server's timings."""

    mask: MaskOut
    timings: Timings = Field(description="milliseconds per stage (server side)")
    backend: str
    box: list[int] = Field(description="the view: [x0, y0, width, height]")
    clicks: Optional[int] = Field(None, description="the session's clicks after this call (not for predict)")
    probabilities_png: Optional[str] = Field(None, description="with ?probabilities=true: base64 8-bit PNG of "
                                                               "round(p * 255)")

    @classmethod
    def of(cls, result: Any, formats: tuple[str, ...], *, clicks: int | None = None,
           probabilities: bool = False) -> "ClickOut":
        """From an ``ivos.ClickResult``."""
        more: dict[str, Any] = {} if clicks is None else {"clicks": clicks}
        if probabilities:
            more["probabilities_png"] = encode_probabilities(result.probabilities)
        box = result.box
        return cls(mask=MaskOut.of(result.mask, formats), timings=result.timings, backend=result.backend,
                   box=[box.x0, box.y0, box.width, box.height], **more)


class NoClickOut(BaseModel):
    """Undo with no click left."""

    clicks: Literal[0]
    mask: None


class ClickPoint(BaseModel):
    x: float
    y: float
    positive: bool


class ImageSessionOut(SessionOut):
    clicks: list[ClickPoint]
    mask: Optional[MaskOut] = Field(description="the current mask, null before the first click")


class ImageResetOut(BaseModel):
    clicks: Literal[0]


# ---- video sessions ----------------------------------------------------------------------
class FrameOut(BaseModel):
    """One object's mask on one frame (``ivos.FrameResult``)."""

    frame_idx: int
    obj_id: int
    mask: MaskOut
    confidence: float
    source: str = Field(description="annotated or propagated")
    timings: FrameTimings = Field(description="milliseconds per stage (server side)")

    @classmethod
    def of(cls, result: Any, formats: tuple[str, ...]) -> "FrameOut":
        return cls(frame_idx=result.frame_idx, obj_id=result.obj_id, mask=MaskOut.of(result.mask, formats),
                   confidence=result.confidence, source=result.source, timings=result.timings)


class VideoUndoOut(BaseModel):
    result: Optional[FrameOut] = Field(description="the frame's mask after the undo; null when nothing was left")


class VideoObjectOut(BaseModel):
    obj_id: int
    annotated_frames: list[int]
    clicks: dict[str, list[tuple[float, float, int]]] = Field(description="frame -> [[x, y, label], ...]")
    masked_frames: int = Field(description="frames with a mask of this object")
    finetuned: bool


class JobOut(BaseModel):
    """A background job (propagation) and its progress."""

    job_id: str
    session_id: str
    kind: str
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    stage: str = Field(description="queued, load, finetune:<obj_id>, propagate")
    done: int = Field(description="progress of the stage")
    total: int
    frame_idx: Optional[int] = Field(description="the last frame finished")
    frames_done: int
    error: Optional[str]
    params: dict[str, Any]
    created: float
    updated: float
    cancel_requested: bool

    @classmethod
    def of(cls, job: JobRecord) -> "JobOut":
        return cls(job_id=job.id, session_id=job.session_id, kind=job.kind, status=job.status, stage=job.stage,
                   done=job.done, total=job.total, frame_idx=job.frame_idx, frames_done=job.frames_done,
                   error=job.error, params=job.params, created=job.created, updated=job.updated,
                   cancel_requested=job.cancel)


class VideoSessionOut(SessionOut):
    objects: list[VideoObjectOut]
    job: Optional[JobOut] = Field(description="the session's last job")


class RemovedOut(BaseModel):
    removed: int


class VideoResetOut(BaseModel):
    objects: list[VideoObjectOut] = Field(description="always empty")


class FrameMasksOut(BaseModel):
    frame_idx: int
    masks: dict[str, MaskOut] = Field(description="obj_id -> mask")


class FrameRecordOut(BaseModel):
    frame_idx: int
    masks: dict[str, RleOut] = Field(description="obj_id -> COCO uncompressed RLE")
    confidence: dict[str, float]
    sources: dict[str, str] = Field(description="obj_id -> annotated or propagated")


class AllMasksOut(BaseModel):
    num_frames: int
    frames: list[FrameRecordOut] = Field(description="the frames with masks, in order")


class SuggestionOut(BaseModel):
    frame_idx: int
    obj_id: int
    score: float
    scores: list[Optional[float]] = Field(description="per frame; null where annotated")

    @classmethod
    def of(cls, s: Any) -> "SuggestionOut":
        """From an ``ivos.FrameSuggestion``."""
        return cls(frame_idx=s.frame_idx, obj_id=s.obj_id, score=s.score,
                   scores=[float(v) if np.isfinite(v) else None for v in s.scores])


class DemoInfo(BaseModel):
    name: str
    clicks: list[dict[str, Any]] = Field(description="suggested first clicks: [{x, y, frame}]")
    license: Optional[str]


class DemoSessionOut(SessionOut):
    demo: DemoInfo
