"""Label Studio's ML backend protocol under ``/label-studio`` (``ivos.serve.label_studio``):
connect a Label Studio project to ``http://<ivos>/label-studio`` as an interactive model.

Authentication: with API keys on the server, Label Studio's "Basic Authentication" (any user
name, an ivos API key as the password) or ``Authorization: Bearer KEY``; ``/health`` is open,
as Label Studio probes it before any setting is made."""
from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, Field

from ..deps import ServiceDep, get_owner, owner_of_key
from ..errors import ApiError
from ..label_studio import LabelStudioBackend
from ..schemas import errors

router = APIRouter(prefix="/label-studio", tags=["label-studio"])

LabelStudioBody = Annotated[dict[str, Any], Body(description="Label Studio's request, as it sends it")]


class LabelStudioHealthOut(BaseModel):
    status: str = Field(description="UP")
    model_class: str
    model_version: str


class LabelStudioSetupOut(BaseModel):
    model_version: str


class LabelStudioPredictOut(BaseModel):
    results: list[dict[str, Any]] = Field(description="one prediction for an interactive request (a brushlabels "
                                                      "result in Label Studio's brush RLE), none otherwise")


class LabelStudioWebhookOut(BaseModel):
    status: str


async def label_studio_owner(request: Request) -> str:
    """The owner of the request's API key: Label Studio's Basic auth (the password is the key),
    else as every other route (``Authorization: Bearer KEY``)."""
    owners: frozenset[str] = request.app.state.owners
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if not owners or scheme.lower() != "basic":
        return await get_owner(request)
    try:
        _, _, key = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "invalid_api_key", "the Basic credentials are not base64 'user:key'",
                       headers={"WWW-Authenticate": "Basic"}) from None
    return owner_of_key(owners, key)


def get_backend(request: Request) -> LabelStudioBackend:
    return request.app.state.label_studio


Owner = Annotated[str, Depends(label_studio_owner)]
Backend = Annotated[LabelStudioBackend, Depends(get_backend)]


@router.get("/health", response_model=LabelStudioHealthOut)
def health(backend: Backend) -> LabelStudioHealthOut:
    """Label Studio's probe (it waits 1 s): answers at once, models loaded or not."""
    return LabelStudioHealthOut(status="UP", model_class="ivos", model_version=backend.model_version)


@router.post("/setup", response_model=LabelStudioSetupOut, responses=errors(401, 422))
def setup(body: LabelStudioBody, who: Owner, backend: Backend) -> LabelStudioSetupOut:
    """The project's labelling config (checked: an Image with a BrushLabels control on it) and
    where its Label Studio is (kept for reading task images)."""
    return LabelStudioSetupOut(**backend.setup(body))


@router.post("/predict", response_model=LabelStudioPredictOut, responses=errors(401, 404, 422, 429, 502, 503))
async def predict(body: LabelStudioBody, who: Owner, backend: Backend, service: ServiceDep) -> LabelStudioPredictOut:
    """An interactive request's mask as a brushlabels result; no prediction without a context."""
    return LabelStudioPredictOut(**await service.requests.run(backend.predict, who, body))


@router.post("/webhook", response_model=LabelStudioWebhookOut, responses=errors(422))
def webhook(body: LabelStudioBody) -> LabelStudioWebhookOut:
    """Label Studio's event notifications (it registers this hook with the backend): ignored."""
    return LabelStudioWebhookOut(status="ok")
