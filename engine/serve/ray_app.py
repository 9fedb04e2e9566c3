"""The same app on Ray Serve: N replicas, each a process with its own models, LRU and pools,
sharing sessions through the store (``--data-dir`` on a disk every replica sees: the SQLite
store for replicas of one machine; ``--store postgresql://...`` for several,
``ivos.serve.store_postgres``).

    ivos serve --ray --replicas 2 [--port 8000] [--data-dir DIR] ...

or from Python (an existing Ray cluster, ``RAY_ADDRESS``)::

    from ray import serve
    from ivos.serve.config import ServeConfig
    from ivos.serve.ray_app import deployment

    app = deployment(ServeConfig(data_dir="/shared/ivos-data", exclusive=False), replicas=2).bind()
    serve.run(app, name="ivos", route_prefix="/")

Each replica builds the FastAPI app itself (``serve.ingress`` with a builder function: the
app holds threads, locks and store connections, which do not travel between processes), and
Ray runs its lifespan (models load in the background; ``/readyz`` answers 503 until then).
Any replica can take any request: live predictors and states are rebuilt from the store when
a request lands on a replica that does not hold them, and writes are rev-checked, so two
replicas never overwrite each other's changes. Every response names the replica that made it
(``X-Ivos-Instance``).
"""
from __future__ import annotations

import dataclasses
import sys
import time

from .config import ServeConfig


def _builder(config_json: str):
    """A function (what ``serve.ingress`` evaluates on each replica) building the app."""
    def build():
        from .app import app_from_json

        return app_from_json(config_json)
    return build


def deployment(config: ServeConfig, *, replicas: int = 2, cpus_per_replica: float = 1.0):
    """The Ray Serve deployment of ``config`` (``exclusive`` forced off: replicas share the
    store); ``.bind()`` it and ``serve.run`` the result."""
    from ray import serve


    config = dataclasses.replace(config, exclusive=False, data_dir=config.data_dir.resolve())
    ingress = serve.ingress(_builder(config.to_json()))()
    return serve.deployment(ingress, name="ivos", num_replicas=replicas,
                            ray_actor_options={"num_cpus": cpus_per_replica},
                            max_ongoing_requests=config.request_threads + config.request_queue)


def run_ray(config: ServeConfig, *, replicas: int, cpus_per_replica: float = 1.0) -> int:
    """``ivos serve --ray``: starts (or joins, with ``RAY_ADDRESS``) Ray, runs the deployment
    with Ray's HTTP proxy on ``config.host:config.port``, and blocks until interrupted."""
    try:
        import ray
        from ray import serve
    except ImportError as e:
        print(f"ivos: error: --ray needs Ray Serve: pip install 'ivos[ray]' ({e})", file=sys.stderr)
        return 2
    import signal

    # SIGTERM ends the process through the finally below (Ray's processes are shut down too)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ray.init(include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(deployment(config, replicas=replicas, cpus_per_replica=cpus_per_replica).bind(), name="ivos",
              route_prefix="/")
    print(f"ivos serve (Ray Serve, {replicas} replicas): http://{config.host}:{config.port}, data in "
          f"{config.data_dir}", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0
