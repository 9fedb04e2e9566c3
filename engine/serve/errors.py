"""HTTP errors of ``ivos serve``: one exception type carrying the status, a stable machine-readable
``code`` and a message for people, rendered as ``{"error": {"code", "message", ...}}``.

Every refusal names what was wrong (and, for limits, the limit and the flag that lifts it), so a
client can show the message as it is."""
from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error response. ``extra`` goes into the error object (e.g. ``{"limit":
    "max_image_pixels", "value": 1e8}``); ``headers`` into the response (``Retry-After``)."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                 **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class TooLarge(Exception):
    """A request body passed ``--max-upload-mb`` while it streamed in (raised from the body
    limit's ``receive``; answered with its ``error``, a 413)."""

    def __init__(self, error: ApiError):
        super().__init__(error.message)
        self.error = error


def not_found(what: str, ident: str) -> ApiError:
    """404 for a missing session or job. Also what a foreign key sees: a session another key made
    is indistinguishable from one that does not exist."""
    return ApiError(404, f"{what.replace(' ', '_')}_not_found", f"no {what} {ident!r} for this API key (unknown id, deleted, "
                    "or made with another key)")


def limit_exceeded(limit: str, message: str, *, status: int = 413, flag: str | None = None, **extra: Any) -> ApiError:
    """413 (or ``status``) naming the limit and the server flag that lifts it."""
    hint = f" (server limit --{flag})" if flag else ""
    return ApiError(status, "limit_exceeded", message + hint, limit=limit, **extra)


def busy(session_id: str, job_id: str) -> ApiError:
    return ApiError(409, "session_busy", f"session {session_id!r} has a job running ({job_id}): wait for it "
                    f"(GET .../jobs/{job_id}) or cancel it (POST .../jobs/{job_id}/cancel) first", job_id=job_id)


def queue_full(pool: str, retry_after: int) -> ApiError:
    return ApiError(429, "queue_full", f"the {pool} queue is full: retry after {retry_after} s",
                    headers={"Retry-After": str(retry_after)}, pool=pool)


def store_unavailable(retry_after: int, *, in_doubt: bool = False) -> ApiError:
    """503 while the session database is unreachable (``ivos.serve.store.StoreUnavailable``):
    retry after ``retry_after`` s. ``in_doubt``: the connection broke while the change was being
    committed, so it may have been saved (``ivos.Client`` does not repeat such a request)."""
    if in_doubt:
        message = ("the session database connection broke while this change was being saved: it may or may not "
                   "have been applied; read the session again before repeating it")
    else:
        message = (f"the session database is unavailable (restarting or unreachable); nothing was changed: retry "
                   f"after {retry_after} s")
    return ApiError(503, "store_unavailable", message, headers={"Retry-After": str(retry_after)}, in_doubt=in_doubt)


def conflict(session_id: str) -> ApiError:
    return ApiError(409, "session_changed", f"session {session_id!r} was changed by another request at the same "
                    "time; nothing was applied: retry")
