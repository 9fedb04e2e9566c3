"""``ivos serve``: the HTTP server (uvicorn), or the same app on Ray Serve with ``--ray``.

    ivos serve [--host 127.0.0.1] [--port 8000] [--model ivos-lite0] [--osvos-model osvos-lite0]
               [--data-dir ivos-data] [--workers N] [--api-key KEY ...] [limits ...]
    ivos serve --ray --replicas N ...

Binding beyond loopback (``--host 0.0.0.0``) needs API keys (``--api-key``, ``--api-keys-file``
or ``IVOS_API_KEYS=k1,k2``). This module imports only argparse at import time, so ``ivos serve
--help`` works without the ``serve`` extra; running it without says what to install.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..settings import PROPAGATIONS
from .config import DEFAULT_DATA_DIR, ServeConfig, keys_from

DEFAULTS = ServeConfig()


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    p.add_argument("--host", default=d.host, help="address to bind (default 127.0.0.1; any other needs API keys)")
    p.add_argument("--port", type=int, default=d.port, help="TCP port (default 8000)")
    p.add_argument("--model", default=d.model, help="click bundle: a shipped name or a bundle folder")
    p.add_argument("--osvos-model", default=d.osvos_model, help="OSVOS bundle for video propagation")
    p.add_argument("--backend", default=d.backend, choices=("auto", "ort", "tensorrt", "torch"))
    p.add_argument("--threads", type=int, default=d.threads, help="threads of every CPU pool (0 = one per CPU)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="where sessions live: the SQLite store and every session's files (default ./ivos-data); "
                   "with --store postgresql://..., local copies and temporary files only")
    p.add_argument("--store", default=os.environ.get("IVOS_STORE", d.store), metavar="URL",
                   help="postgresql://user@host:port/database: sessions and their files in PostgreSQL, shared by "
                   "servers on several machines (default: SQLite in --data-dir; also $IVOS_STORE; the password "
                   "from $PGPASSWORD or ~/.pgpass)")
    p.add_argument("--blobs", default=d.blobs, metavar="DIR",
                   help="keep session files (uploads, video states, exports) in this folder, e.g. a disk every "
                   "server mounts (default: with the store: --data-dir, or the PostgreSQL database)")
    p.add_argument("--store-timeout-s", type=float, default=d.store_timeout_s,
                   help="the longest a request waits for the database before 503 + Retry-After (default 5)")
    p.add_argument("--workers", type=int, default=d.workers,
                   help="uvicorn worker processes (each loads the models; they share the store)")
    p.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help="accepted bearer token (repeatable); also --api-keys-file and $IVOS_API_KEYS")
    p.add_argument("--api-keys-file", type=Path, default=None, help="file with one API key a line")
    p.add_argument("--request-threads", type=int, default=d.request_threads,
                   help="threads for clicks and other short work")
    p.add_argument("--request-queue", type=int, default=d.request_queue,
                   help="requests that may wait for those threads before 429")
    p.add_argument("--job-workers", type=int, default=d.job_workers, help="propagation jobs run at once")
    p.add_argument("--job-queue", type=int, default=d.job_queue, help="jobs that may wait before 429")
    p.add_argument("--live-images", type=int, default=d.live_images, help="image sessions kept in memory (LRU)")
    p.add_argument("--live-videos", type=int, default=d.live_videos, help="video sessions kept in memory (LRU)")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / 2 ** 20,
                   help="largest request body in MiB (default 256)")
    p.add_argument("--max-image-pixels", type=int, default=d.max_image_pixels,
                   help="largest image or video frame, width x height (default 25,000,000)")
    p.add_argument("--max-frames", type=int, default=d.max_frames, help="most frames of a video (default 3000)")
    p.add_argument("--max-duration-s", type=float, default=d.max_duration_s,
                   help="longest video in seconds (default 600)")
    p.add_argument("--finetune-steps", type=int, default=None,
                   help="OSVOS fine-tuning steps per object (default: the library's)")
    p.add_argument("--finetune-augmentations", type=int, default=None,
                   help="augmented copies per annotated frame (default: the library's)")
    p.add_argument("--quick-start", type=int, default=None, metavar="STEPS",
                   help="show a propagation's first frame after a fine-tune of STEPS steps (60: about a second), "
                   "the whole fine-tune after it (costs 0.003 cross-validated J: benchmarks/results/video_cv.md; "
                   "default: the recipe's, off)")
    p.add_argument("--adapt-every", type=int, default=None, metavar="N",
                   help="online adaptation every N propagated frames (default: the OSVOS bundle's, off; more "
                   "accurate on fast motion, slower: benchmarks/results/video_cv.md)")
    p.add_argument("--no-crf", dest="crf", action="store_false", help="no dense CRF on propagated frames")
    p.add_argument("--propagation", default=d.propagation, choices=PROPAGATIONS,
                   help="named propagation recipe: bundle (the OSVOS bundle's, default) or classic (the "
                   "propagation before the memory mode became the default)")
    p.add_argument("--checkpoint-s", type=float, default=d.checkpoint_s,
                   help="a running propagation saves its masks this often (seconds)")
    p.add_argument("--session-ttl-h", type=float, default=d.session_ttl_h,
                   help="delete sessions unchanged for this many hours (0 = keep them; default)")
    p.add_argument("--fsync", action="store_true",
                   help="wait for the disk at every store commit (survives power loss too; slower clicks)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--job-stale-s", type=float, default=d.job_stale_s,
                   help="a job whose server stopped beating for this long is taken as dead (default 30)")
    p.add_argument("--resume-jobs", action=argparse.BooleanOptionalAction, default=None,
                   help="run a dead server's jobs again on this one, from their last checkpoint (default: on with "
                   "--ray, off otherwise: they show 'interrupted')")
    p.add_argument("--ray", action="store_true", help="deploy on Ray Serve instead of plain uvicorn")
    p.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas (with --ray)")
    p.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs Ray reserves per replica (with --ray)")
    p.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS") or None, metavar="ADDR",
                   help="join this Ray cluster (host:port of its head, or 'auto' for the one started on this machine "
                   "with 'ray start'; also $RAY_ADDRESS) instead of starting a Ray instance in this process")
    p.add_argument("--ray-replicas-per-node", type=int, default=0, metavar="N",
                   help="at most N replicas on one Ray node (1: each replica on its own machine; default 0: no limit)")
    p.add_argument("--ray-resource", default=None, metavar="NAME",
                   help="each replica needs one unit of this custom Ray resource (start each node with "
                   "--resources '{\"NAME\": 1}' to hold one replica per node)")
    p.add_argument("--ray-proxy", default="every", choices=("every", "head"),
                   help="Ray Serve's HTTP proxy on every node (default) or on the head node only")


def config_from(args: argparse.Namespace) -> ServeConfig:
    """The ``ServeConfig`` of parsed ``ivos serve`` arguments."""
    keys = keys_from(args.api_key, args.api_keys_file, os.environ.get("IVOS_API_KEYS"))
    return ServeConfig(
        host=args.host, port=args.port, model=args.model, osvos_model=args.osvos_model, backend=args.backend,
        threads=args.threads, data_dir=args.data_dir.resolve(), store=args.store,
        blobs=str(Path(args.blobs).resolve()) if args.blobs else "", store_timeout_s=args.store_timeout_s,
        workers=args.workers, api_keys=keys,
        request_threads=args.request_threads, request_queue=args.request_queue, job_workers=args.job_workers,
        job_queue=args.job_queue, live_images=args.live_images, live_videos=args.live_videos,
        max_upload_bytes=int(args.max_upload_mb * 2 ** 20), max_image_pixels=args.max_image_pixels,
        max_frames=args.max_frames, max_duration_s=args.max_duration_s, finetune_steps=args.finetune_steps,
        finetune_augmentations=args.finetune_augmentations, quick_start=args.quick_start,
        adapt_every=args.adapt_every, crf=args.crf,
        propagation=args.propagation, checkpoint_s=args.checkpoint_s, job_stale_s=args.job_stale_s,
        resume_jobs=args.ray if args.resume_jobs is None else args.resume_jobs,
        fsync=args.fsync, session_ttl_h=args.session_ttl_h,
        # one worker alone on its data dir; never with PostgreSQL (other machines share the database)
        exclusive=args.workers == 1 and not args.ray and args.store in ("", "sqlite"))


def serve(args: argparse.Namespace) -> int:
    """Runs the server until interrupted. Returns the exit code."""
    try:
        import uvicorn

        from .app import create_app  # FastAPI, sse-starlette, ...: the rest of the extra
    except ImportError as e:
        print(f"ivos: error: ivos serve needs the serve extra: pip install 'ivos[serve]' ({e})", file=sys.stderr)
        return 2
    try:
        config = config_from(args)
        config.check()
    except (ValueError, OSError) as e:
        print(f"ivos: error: {e}", file=sys.stderr)
        return 2
    if args.ray:
        from .ray_app import run_ray

        return run_ray(config, replicas=args.replicas, cpus_per_replica=args.ray_cpus, address=args.ray_address,
                       replicas_per_node=args.ray_replicas_per_node, resource=args.ray_resource,
                       proxy=args.ray_proxy)
    print(f"ivos serve: http://{config.host}:{config.port} (docs at /docs), {describe_store(config)}, "
          f"{'API keys required' if config.api_keys else 'no API keys (loopback only)'}", file=sys.stderr)
    if config.workers > 1:
        os.environ["IVOS_SERVE_CONFIG"] = config.to_json()
        uvicorn.run("ivos.serve.app:app_from_env", factory=True, host=config.host, port=config.port,
                    workers=config.workers, log_level=args.log_level, timeout_graceful_shutdown=10)
        return 0
    from .store import StoreUnavailable

    try:
        app = create_app(config)
    except (StoreUnavailable, RuntimeError) as e:  # the database unreachable, too new, the extra missing
        print(f"ivos: error: {e}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=config.host, port=config.port, log_level=args.log_level, timeout_graceful_shutdown=10)
    return 0


def describe_store(config: ServeConfig) -> str:
    """Where sessions live, for the start-up line (the URL without its password)."""
    if config.store_kind == "postgresql":
        from .store_postgres import redacted

        where = f"sessions in {redacted(config.store)}"
    else:
        where = f"sessions in {config.data_dir}"
    return where + (f", files in {config.blobs}" if config.blobs else "")


def main(argv: list[str] | None = None) -> int:
    """``python -m ivos.serve.cli`` (same as ``ivos serve``)."""
    parser = argparse.ArgumentParser(prog="ivos serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_serve_arguments(parser)
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
