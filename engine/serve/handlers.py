"""The exception handlers of the app: every refusal, whoever raises it (the service, pydantic,
Starlette's router, the body limit), is answered ``{"error": {"code", "message", ...}}`` with
its status (``ivos.serve.errors``); an unexpected exception is logged and answered 500 without
its details."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ApiError, TooLarge, conflict, store_unavailable
from .schemas import MASK_FIELDS
from .store import Conflict, StoreUnavailable

log = logging.getLogger("ivos.serve")


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


async def _api_error(_request: Request, err: ApiError) -> JSONResponse:
    return error_response(err)


async def _too_large(_request: Request, err: TooLarge) -> JSONResponse:  # a chunked body passed the limit
    return error_response(err.error)


async def _conflict(_request: Request, err: Conflict) -> JSONResponse:
    return error_response(conflict(str(err)))


async def _store_unavailable(request: Request, err: StoreUnavailable) -> JSONResponse:
    """503 + Retry-After; the details (they may name hosts or sockets) go to the log only."""
    log.warning("%s %s: store unavailable: %s", request.method, request.url.path, err)
    return error_response(store_unavailable(err.retry_after, in_doubt=err.in_doubt))


async def _validation(_request: Request, err: RequestValidationError) -> JSONResponse:
    """422 ``invalid_request`` naming each field and its problem (``invalid_mask`` when every
    problem is inside a mask payload)."""
    problems = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", ""),
                 "type": e.get("type", "")} for e in err.errors()]
    message = "; ".join(f"{p['where']}: {p['problem']}" for p in problems) or "invalid request"
    in_masks = [tuple(e.get("loc", ()))[:2] in {("body", f) for f in MASK_FIELDS} for e in err.errors()]
    code = "invalid_mask" if in_masks and all(in_masks) else "invalid_request"
    return error_response(ApiError(422, code, message, problems=problems))


async def _http(_request: Request, err: StarletteHTTPException) -> JSONResponse:
    cause = err.__cause__ or err.__context__
    if isinstance(cause, TooLarge):  # FastAPI wraps errors while parsing the body as a 400
        return error_response(cause.error)
    code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "bad_request")
    return error_response(ApiError(err.status_code, code, str(err.detail)))


async def _internal(request: Request, err: Exception) -> JSONResponse:  # logged; the server goes on
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error_response(ApiError(500, "internal_error", f"internal error ({type(err).__name__}); the request "
                                   "changed nothing it had not committed; see the server log"))


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(TooLarge, _too_large)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _internal)
