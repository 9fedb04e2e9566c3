"""Image sessions (``ivos.ImagePredictor`` over HTTP): upload, clicks, undo, reset, stateless
predict, replace the image, delete. Each operation runs on the bounded request pool (429 when
full)."""
from __future__ import annotations

from typing import Annotated, Union

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..deps import ImageSession, MaskFormats, Owner, ServiceDep
from ..schemas import (ClickIn, ClickOut, ClickPoint, ImageResetOut, ImageSessionOut, MaskOut, NoClickOut, PredictIn,
                       SessionOut, errors)

router = APIRouter(prefix="/v1/images", tags=["images"], responses=errors(401, 404, 422, 429, 503))

Upload = Annotated[UploadFile, File(description="PNG, JPEG, WebP, BMP, TIFF or GIF")]
Probabilities = Annotated[bool, Query(description="also the foreground probability as an 8-bit PNG (p * 255)")]


async def click_out(result, fmt: tuple[str, ...], *, clicks: int | None = None,
                    probabilities: bool = False) -> ClickOut:
    """The response of a prediction; PNG encoding (of the mask or the probabilities) off the
    event loop."""
    if probabilities or "png" in fmt:
        return await run_in_threadpool(ClickOut.of, result, fmt, clicks=clicks, probabilities=probabilities)
    return ClickOut.of(result, fmt, clicks=clicks)


@router.post("", status_code=201, response_model=SessionOut, response_model_exclude_unset=True,
             responses=errors(400, 413, 415))
async def create_image(image: Upload, who: Owner, service: ServiceDep) -> SessionOut:
    """A new session of the uploaded image."""
    rec = await service.requests.run(service.create_image, who, await image.read())  # the body limit bounds it
    return SessionOut.of(rec)


@router.get("/{session_id}", response_model=ImageSessionOut, response_model_exclude_unset=True)
async def get_image(rec: ImageSession, fmt: MaskFormats, service: ServiceDep) -> ImageSessionOut:
    """The session with its clicks and current mask."""
    clicks, mask = await service.requests.run(service.image_state, rec)
    return ImageSessionOut.of(rec, clicks=[ClickPoint(x=x, y=y, positive=p) for x, y, p in clicks],
                              mask=None if mask is None else MaskOut.of(mask, fmt))


@router.put("/{session_id}/image", response_model=SessionOut, response_model_exclude_unset=True,
            responses=errors(400, 409, 413, 415))
async def replace_image(image: Upload, rec: ImageSession, service: ServiceDep) -> SessionOut:
    """``set_image`` on the session: a new image, every click forgotten."""
    rec = await service.requests.run(service.image_replace, rec, await image.read())
    return SessionOut.of(rec)


@router.post("/{session_id}/clicks", response_model=ClickOut, response_model_exclude_unset=True,
             responses=errors(409))
async def add_click(body: ClickIn, rec: ImageSession, fmt: MaskFormats, service: ServiceDep,
                    probabilities: Probabilities = False) -> ClickOut:
    """``add_click``: the mask of every click so far."""
    result, n = await service.requests.run(service.image_click, rec, body.x, body.y, body.positive)
    return await click_out(result, fmt, clicks=n, probabilities=probabilities)


@router.post("/{session_id}/undo", response_model=Union[ClickOut, NoClickOut], response_model_exclude_unset=True,
             responses=errors(409))
async def undo_click(rec: ImageSession, fmt: MaskFormats, service: ServiceDep) -> Union[ClickOut, NoClickOut]:
    """Drops the last click: the mask before it, or ``{"clicks": 0, "mask": null}``."""
    result, n = await service.requests.run(service.image_undo, rec)
    return NoClickOut(clicks=0, mask=None) if result is None else await click_out(result, fmt, clicks=n)


@router.post("/{session_id}/reset", response_model=ImageResetOut, responses=errors(409))
async def reset_image(rec: ImageSession, service: ServiceDep) -> ImageResetOut:
    """Forgets every click (keeps the image)."""
    await service.requests.run(service.image_reset, rec)
    return ImageResetOut(clicks=0)


@router.post("/{session_id}/predict", response_model=ClickOut, response_model_exclude_unset=True)
async def predict(body: PredictIn, rec: ImageSession, fmt: MaskFormats, service: ServiceDep,
                  probabilities: Probabilities = False) -> ClickOut:
    """Stateless ``predict`` on the session's image from points and an optional prior mask (the
    clicks are untouched)."""
    mask = None if body.mask_input is None else body.mask_input.decode(rec.height, rec.width, "mask_input")
    result = await service.requests.run(service.image_predict, rec, body.points, body.labels, mask)
    return await click_out(result, fmt, probabilities=probabilities)


@router.delete("/{session_id}", status_code=204, response_class=Response)
async def delete_image(rec: ImageSession, service: ServiceDep) -> Response:
    """Deletes the session: its image, clicks and masks."""
    await service.requests.run(service.delete, rec)
    return Response(status_code=204)
