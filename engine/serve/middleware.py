"""The app's two ASGI middlewares (pure ASGI: nothing buffered, streams included):
``BodyLimit`` (413 for request bodies over ``--max-upload-mb``) and ``RequestMetrics``
(Prometheus counts and latency per route template, and the ``X-Ivos-Instance`` header)."""
from __future__ import annotations

import time

from .errors import TooLarge, limit_exceeded
from .handlers import error_response
from .metrics import Metrics


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413 naming the limit: at once from
    ``Content-Length``, or as soon as a chunked body passes it."""

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
                    raise TooLarge(err)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except TooLarge as e:  # the app let it through (its handler answers it otherwise)
            if not started:
                await error_response(e.error)(scope, receive, send)


class RequestMetrics:
    """Counts requests and times them per route template; adds ``X-Ivos-Instance`` (which
    process answered: a worker or a Ray replica, since sessions move between them)."""

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
                message = {**message, "headers": [*message.get("headers", []), self.instance]}
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            self.metrics.latency.labels(scope["method"], path).observe(time.perf_counter() - t0)
