"""``ivos serve``: interactive segmentation as an HTTP service (FastAPI + uvicorn; the ``serve``
extra: ``pip install 'ivos[serve]'``).

Modules, one job each: ``config`` (every knob), ``store`` (sessions that survive: SQLite behind
``SessionStore``), ``media`` (uploads checked by decoding), ``codec`` (masks on the wire),
``live`` (bounded LRU of live sessions, striped locks), ``pools`` (bounded thread pools, 429
when full), ``service`` (the operations, HTTP-free), ``jobs`` (propagation in the background),
``exports`` (PNG zip, COCO, RLE, sticker), ``metrics`` (Prometheus), ``app`` (the routes),
``cli`` (``ivos serve``), ``ray_app`` (the same app on Ray Serve), ``testing`` (``ServerProcess``:
``ivos serve`` in a subprocess, the one harness of tests and benchmarks).

Nothing here is imported by ``import ivos``; the runtime never imports this package.
"""


def create_app(config=None, **kwargs):
    """The FastAPI app (``ivos.serve.app.create_app``); ``config`` an ``ivos.serve.config.ServeConfig``
    (default: its defaults)."""
    from .app import create_app as _create
    from .config import ServeConfig

    return _create(config or ServeConfig(), **kwargs)
