"""The routes' dependencies, read from ``request.app.state`` (set by ``create_app``): the
``Service``, the API-key check (``Owner``: whose sessions a request may see), the session
look-ups (``ImageSession`` / ``VideoSession``: 404 for an unknown id, another kind or another
key's session) and the ``?mask_format=`` query parameter (``MaskFormats``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from ..formats.codec import MASK_FORMATS
from .errors import ApiError
from .service import Service, owner_of
from .store import SessionRecord


async def get_service(request: Request) -> Service:  # async: no thread hop for a look-up
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


async def get_owner(request: Request) -> str:
    """The owner the request's API key stands for (``owner_of``; "" when the server has no
    keys); 401 without a valid ``Authorization: Bearer KEY``."""
    owners: frozenset[str] = request.app.state.owners
    if not owners:
        return ""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing_api_key", "this server needs an API key: send 'Authorization: Bearer KEY'",
                       headers={"WWW-Authenticate": "Bearer"})
    return owner_of_key(owners, token.strip())


def owner_of_key(owners: frozenset[str], key: str) -> str:
    """The owner of API key ``key``; 401 when it is not one of the server's."""
    who = owner_of(key)
    if who not in owners:
        raise ApiError(401, "invalid_api_key", "the API key is not valid on this server",
                       headers={"WWW-Authenticate": "Bearer"})
    return who


Owner = Annotated[str, Depends(get_owner)]


# plain functions: FastAPI runs them in its thread pool (they read the store)
def image_session(session_id: str, who: Owner, service: ServiceDep) -> SessionRecord:
    return service.session(session_id, who, "image")


def video_session(session_id: str, who: Owner, service: ServiceDep) -> SessionRecord:
    return service.session(session_id, who, "video")


ImageSession = Annotated[SessionRecord, Depends(image_session)]
VideoSession = Annotated[SessionRecord, Depends(video_session)]


def parse_formats(text: str, name: str = "mask_format") -> tuple[str, ...]:
    """``"rle"``, ``"png"`` or ``"rle,png"`` -> the tuple; 422 naming ``name`` otherwise."""
    formats = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [f for f in formats if f not in MASK_FORMATS]
    if bad or not formats:
        raise ApiError(422, "invalid_request", f"{name} must be rle, png or rle,png; got {text!r}")
    return formats


async def mask_formats(mask_format: str = Query("rle", description="rle, png or rle,png")) -> tuple[str, ...]:
    return parse_formats(mask_format)


MaskFormats = Annotated[tuple[str, ...], Depends(mask_formats)]
