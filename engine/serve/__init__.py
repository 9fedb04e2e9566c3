"""``ivos serve``: interactive segmentation as an HTTP service (FastAPI + uvicorn; the ``serve``
extra: ``pip install 'ivos[serve]'``). docs/serving.md describes the API.

Modules, one job each: ``config`` (every knob), ``app`` (``create_app``: assembles the rest),
``routes`` (one ``APIRouter`` per resource: service, images, videos, jobs, web), ``schemas``
(the wire format as pydantic models), ``deps`` (the routes' dependencies: service, API key,
session look-ups, mask formats), ``handlers`` (every error as ``{"error": {...}}``),
``middleware`` (body limit, request metrics), ``errors`` (``ApiError``), ``service`` (the
operations, HTTP-free), ``store`` (sessions that survive: SQLite behind ``SessionStore``),
``store_postgres`` (the same in PostgreSQL, for several machines), ``blobs`` (session files by
key: a folder, or the PostgreSQL store), ``media`` (uploads checked by decoding), ``live``
(bounded LRU of live sessions, striped locks), ``pools`` (bounded thread pools, 429 when full),
``jobs`` (propagation in the background), ``exports`` (PNG zip, COCO, RLE, sticker),
``metrics`` (Prometheus), ``cli`` (``ivos serve``), ``ray_app`` (the same app on Ray Serve),
``testing`` (``in_process``: the app in this process; ``ServerProcess``: ``ivos serve`` in a
subprocess; ``PostgresServer``: a throw-away PostgreSQL; the harnesses of tests and benchmarks).
Masks on the wire are ``ivos.formats.codec``'s, shared with ``ivos.Client``.

Nothing here is imported by ``import ivos``; the runtime never imports this package.
"""


def create_app(config=None, **kwargs):
    """The FastAPI app (``ivos.serve.app.create_app``); ``config`` an ``ivos.serve.config.ServeConfig``
    (default: its defaults)."""
    from .app import create_app as _create
    from .config import ServeConfig

    return _create(config or ServeConfig(), **kwargs)
