"""The FastAPI app of ``ivos serve`` (OpenAPI schema at ``/openapi.json``, docs at ``/docs``;
the endpoints, errors, limits and events are described in docs/serving.md).

``create_app`` only assembles: the ``Service`` (and the hashed API keys, the metrics) go to
``app.state``, where the routes' dependencies read them (``ivos.serve.deps``); the lifespan
loads the models and runs the heartbeat; then the error handlers (``ivos.serve.handlers``), the
routers (``ivos.serve.routes``) and the two middlewares (``ivos.serve.middleware``).
"""
from __future__ import annotations

import os
import threading
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from .config import ServeConfig
from .handlers import add_error_handlers
from .metrics import Metrics
from .middleware import BodyLimit, RequestMetrics
from .jobs import take_over_jobs
from .label_studio import LabelStudioBackend
from .routes import images, jobs, label_studio, service as service_routes, videos, web
from .service import Service, owner_of


def create_app(config: ServeConfig, *, load_in_background: bool = True, instance: str | None = None) -> FastAPI:
    """The ASGI app for ``config``: one ``Service`` (models loaded once by the lifespan: in a
    background thread, ``/readyz`` 503 until done, or before it serves anything when
    ``load_in_background`` is False), routes, error handlers, metrics. ``instance`` names the
    process (``X-Ivos-Instance``; default a random ``inst_...``)."""
    import ivos

    service = Service(config, instance=instance)
    metrics = Metrics(service.counts, lambda: {"image": len(service.images), "video": len(service.videos)},
                      lambda: {"requests": service.requests.depth, "jobs": service.jobs_pool.depth,
                               "exports": service.exports.depth})
    service.metrics = metrics
    service.take_over = take_over_jobs

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if load_in_background:
            threading.Thread(target=service.load_models, name="ivos-load", daemon=True).start()
        else:
            await run_in_threadpool(service.load_models)
        service.start_heartbeat()
        yield
        service.close()

    app = FastAPI(title="ivos serve", version=ivos.__version__, lifespan=lifespan,
                  description="Interactive video object segmentation over HTTP: image sessions (clicks -> mask) "
                              "and video sessions (clicks, propagation jobs, corrections, exports). Errors are "
                              '`{"error": {"code", "message", ...}}`. See docs/serving.md.')
    app.state.service = service
    app.state.metrics = metrics
    app.state.owners = frozenset(owner_of(k) for k in config.api_keys)
    app.state.label_studio = LabelStudioBackend(service)

    add_error_handlers(app)
    for module in (service_routes, images, videos, jobs, web, label_studio):
        app.include_router(module.router)
    app.mount("/web", web.static_files(), name="web")
    # ASGI middleware, the last added outermost: metrics see every answer, the body limit too
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics, instance=service.instance)
    return app


def app_from_json(text: str, *, instance: str | None = None) -> FastAPI:
    """The app of a ``ServeConfig`` given as JSON (``ServeConfig.to_json``)."""
    return create_app(ServeConfig.from_json(text), instance=instance)


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` (``--workers N``): the config comes as JSON in
    ``$IVOS_SERVE_CONFIG`` (``ivos.serve.cli`` sets it)."""
    return app_from_json(os.environ["IVOS_SERVE_CONFIG"])
