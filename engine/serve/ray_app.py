"""The same app on Ray Serve: N replicas, each a process with its own models, LRU and pools,
sharing sessions through the store: the SQLite store in ``--data-dir`` for replicas on one
machine; ``--store postgresql://...`` for replicas on several (``ivos.serve.store_postgres``).

    ivos serve --ray --replicas 2 [--port 8000] [--data-dir DIR] ...      # a Ray instance of its own
    ivos serve --ray --ray-address auto --replicas 2 --ray-replicas-per-node 1 \\
        --store postgresql://ivos@db/ivos ...                              # an existing Ray cluster

or from Python (an existing Ray cluster, ``RAY_ADDRESS``)::

    from ray import serve
    from ivos.serve.config import ServeConfig
    from ivos.serve.ray_app import deployment

    app = deployment(ServeConfig(store="postgresql://ivos@db/ivos", exclusive=False), replicas=2,
                     replicas_per_node=1).bind()
    serve.run(app, name="ivos", route_prefix="/")

Each replica builds the FastAPI app itself (``serve.ingress`` with a builder function: the
app holds threads, locks and store connections, which do not travel between processes), and
Ray runs its lifespan (models load in the background; ``/readyz`` answers 503 until then).
Any replica can take any request: live predictors and states are rebuilt from the store when
a request lands on a replica that does not hold them, and writes are rev-checked, so two
replicas never overwrite each other's changes. Every response names the replica that made it
(``X-Ivos-Instance``: ``inst_<Ray node name>_<random>``).

Placement: ``replicas_per_node`` (Ray Serve's ``max_replicas_per_node``; 1 puts each replica on
its own node) or ``resource`` (each replica needs one unit of a custom resource that nodes
offer, ``ray start --resources '{"ivos": 1}'``). A replica lost with its node is started again
by Ray Serve where room is left; meanwhile the others serve every session, and the jobs it ran
are taken over by a surviving replica once their heartbeat is ``job_stale_s`` old
(``resume_jobs``, on here: ``ivos.serve.jobs.take_over_jobs``).
"""
from __future__ import annotations

import dataclasses
import re
import sys
import time

from .config import ServeConfig


def _instance_name() -> str:
    """``inst_<this Ray node's name>_<random>``: the replica's ``X-Ivos-Instance``."""
    from .service import new_id

    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        name = next((n.get("NodeName") or n.get("NodeManagerAddress") for n in ray.nodes()
                     if n.get("NodeID") == node_id), None) or node_id[:12]
    except Exception:  # not in Ray, or the GCS slow to answer: a plain id
        return new_id("inst_")
    return f"inst_{re.sub(r'[^A-Za-z0-9.-]', '-', str(name))[:40]}_{new_id('')[:12]}"


def _builder(config_json: str):
    """A function (what ``serve.ingress`` evaluates on each replica) building the app."""
    def build():
        from .app import app_from_json

        return app_from_json(config_json, instance=_instance_name())
    return build


def deployment(config: ServeConfig, *, replicas: int = 2, cpus_per_replica: float = 1.0, replicas_per_node: int = 0,
               resource: str | None = None):
    """The Ray Serve deployment of ``config`` (``exclusive`` forced off: replicas share the
    store; ``resume_jobs`` on: a lost replica's jobs are run again by another); ``.bind()`` it
    and ``serve.run`` the result."""
    from ray import serve

    config = dataclasses.replace(config, exclusive=False, resume_jobs=True, data_dir=config.data_dir.resolve())
    ingress = serve.ingress(_builder(config.to_json()))()
    actor: dict = {"num_cpus": cpus_per_replica}
    if resource:
        actor["resources"] = {resource: 1}
    options: dict = {"max_replicas_per_node": replicas_per_node} if replicas_per_node > 0 else {}
    return serve.deployment(ingress, name="ivos", num_replicas=replicas, ray_actor_options=actor,
                            max_ongoing_requests=config.request_threads + config.request_queue, **options)


def check_cluster(config: ServeConfig, replicas: int, nodes: int) -> str | None:
    """Why ``config`` cannot run ``replicas`` replicas on a cluster of ``nodes`` live nodes
    (None when it can): the SQLite store is a file of one machine."""
    if nodes > 1 and replicas > 1 and config.store_kind == "sqlite":
        return (f"--ray --replicas {replicas} on a Ray cluster of {nodes} nodes needs a store every machine "
                "reaches: the SQLite store in --data-dir cannot be shared across machines; use --store "
                "postgresql://user@host/database (or --replicas 1)")
    return None


def run_ray(config: ServeConfig, *, replicas: int, cpus_per_replica: float = 1.0, address: str | None = None,
            replicas_per_node: int = 0, resource: str | None = None, proxy: str = "every") -> int:
    """``ivos serve --ray``: starts Ray (or joins the cluster at ``address``: ``auto``,
    ``host:port``), runs the deployment with Ray Serve's HTTP proxy on ``config.host:config.port``
    (on every node, or the head only: ``proxy``), and blocks until interrupted. On the way out
    the app is deleted (a cluster it joined keeps running); a Ray instance of its own stops."""
    try:
        import ray
        from ray import serve
    except ImportError as e:
        print(f"ivos: error: --ray needs Ray Serve: pip install 'ivos[ray]' ({e})", file=sys.stderr)
        return 2
    import signal

    if replicas < 1:
        print(f"ivos: error: --replicas must be positive, got {replicas}", file=sys.stderr)
        return 2
    # SIGTERM ends the process through the finally below (Ray's processes are shut down too)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        ray.init(address=address, include_dashboard=False if not address else None, ignore_reinit_error=True,
                 log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        print(f"ivos: error: cannot join the Ray cluster at {address!r}: {e}", file=sys.stderr)
        return 2
    joined, started = bool(address), False
    try:
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        problem = check_cluster(config, replicas, nodes)
        if problem:
            print(f"ivos: error: {problem}", file=sys.stderr)
            return 2
        serve.start(proxy_location="EveryNode" if proxy == "every" else "HeadOnly",
                    http_options={"host": config.host, "port": config.port})
        started = True
        serve.run(deployment(config, replicas=replicas, cpus_per_replica=cpus_per_replica,
                             replicas_per_node=replicas_per_node, resource=resource).bind(),
                  name="ivos", route_prefix="/")
        print(f"ivos serve (Ray Serve, {replicas} replicas on a cluster of {nodes} node(s)): "
              f"http://{config.host}:{config.port}, data in {config.data_dir}", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        try:
            if started and joined:
                serve.delete("ivos")
            elif started:
                serve.shutdown()
        finally:
            ray.shutdown()
    return 0
