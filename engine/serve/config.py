"""``ServeConfig``: every knob of ``ivos serve`` in one frozen dataclass (the CLI flags map onto
it one to one: ``--max-image-pixels`` is ``max_image_pixels``).

Defaults are for one CPU machine serving an annotation tool: a few dozen people clicking, one
propagation at a time per job worker. Every limit is refused with a 4xx naming the limit and its
flag (``ivos.serve.errors.limit_exceeded``)."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path("ivos-data")


@dataclass(frozen=True)
class ServeConfig:
    """Server settings.

    Attributes:
        host, port: where uvicorn binds. Anything but a loopback address needs ``api_keys``.
        model: click bundle (shipped name or folder) for image sessions and video clicks.
        osvos_model: OSVOS bundle for video propagation.
        backend, threads: passed to ``ivos.load`` (threads 0 = one per usable CPU).
        data_dir: the store (``sessions.sqlite3``) and every session's files (``sessions/<id>/``);
            with a PostgreSQL ``store``, only local copies (``cache/``) and temporary files.
        store: where sessions live: "" (default) the SQLite file in ``data_dir``, or a
            ``postgresql://user@host:port/db`` URL (``ivos.serve.store_postgres``; libpq's
            ``PGPASSWORD`` / ``~/.pgpass`` keep the password out of the URL).
        blobs: where session files (uploads, video states, exports) live: "" (default) with the
            store (under ``data_dir`` for SQLite, in the database for PostgreSQL), or a folder
            (a disk every server mounts).
        store_timeout_s: the longest a request waits for the database (a connection, a
            reconnect) before it answers 503 ``store_unavailable`` with ``Retry-After``.
        workers: uvicorn worker processes; each loads the models once and they share the store.
        api_keys: accepted bearer tokens (empty: no auth, loopback only). Sessions belong to
            the key that made them (its SHA-256), invisible to other keys.
        request_threads: threads running clicks and other short work off the event loop.
        request_queue: requests allowed to wait for those threads before 429.
        job_workers: propagation/export jobs run at once (each holds a VideoPredictor).
        job_queue: jobs allowed to wait before 429 (never an unbounded queue).
        live_images: image sessions kept decoded with their predictor (LRU; the rest are
            rebuilt from the store on their next request).
        live_videos: video sessions kept loaded (LRU); a session with a running job stays.
        max_upload_bytes: largest request body (images, videos, frames, JSON).
        max_image_pixels: largest image and video frame (width x height), checked from the
            header before anything is decoded (decompression bombs).
        max_frames: most frames of a video session.
        max_duration_s: longest video (frames / fps).
        finetune_steps, finetune_augmentations: OSVOS fine-tuning per object (None: the
            library's defaults, ``ivos.FinetuneConfig``); tests and small machines lower them.
        quick_start: the quick start's fine-tuning steps (``FinetuneConfig.quick_steps``): a
            propagation job shows its first frame after a fit of this many steps and runs the
            whole fine-tune after it (0: off; None: the recipe's, off for the shipped bundles).
        adapt_every: online adaptation every this many propagated frames (``VideoPredictor(adapt_every=)``;
            None: the OSVOS bundle's, off for the shipped ones; more accurate on fast motion, slower).
        crf: dense CRF on propagated frames (``VideoPredictor(crf=)``).
        propagation: the named propagation recipe (``VideoPredictor(propagation=)``: "bundle" or
            "classic", ``ivos.settings.PROPAGATIONS``).
        frame_cache: decoded frames a loaded video keeps (``init_state(cache_size=)``).
        checkpoint_s: a running propagation saves the masks done so far this often, so a crash
            loses at most this much work.
        exclusive: this process alone serves the data dir (one worker, no Ray): unfinished jobs
            found at start-up are marked interrupted at once instead of after ``job_stale_s``.
        job_stale_s: a job whose heartbeat is older is taken as dead (its process crashed).
        resume_jobs: a job taken as dead is run again by this server (its row taken over: same
            job id, back to "queued", ``params["resumed"]`` counting the take-overs), from the
            state its last checkpoint saved (a head saved after fine-tuning is not tuned again);
            after ``ivos.serve.jobs.MAX_RESUMES`` take-overs it is marked interrupted instead. Off: it is marked
            interrupted and waits for a client to start it again. On with ``ivos serve --ray``.
        fsync: the store waits for the disk at every commit (survives power loss, not only a
            crash of the process; ``ivos.serve.store.SQLiteStore``; with PostgreSQL,
            ``synchronous_commit = on`` instead of ``off``: ``ivos.serve.store_postgres.Database``).
        session_ttl_h: sessions unchanged for this many hours (and without a job) are deleted
            with their files; 0 keeps them until deleted (DELETE /v1/images/{id}, ...).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "ivos-lite0"
    osvos_model: str = "osvos-lite0"
    backend: str = "auto"
    threads: int = 0
    data_dir: Path = DEFAULT_DATA_DIR
    store: str = ""
    blobs: str = ""
    store_timeout_s: float = 5.0
    workers: int = 1
    api_keys: tuple[str, ...] = ()
    request_threads: int = 4
    request_queue: int = 64
    job_workers: int = 1
    job_queue: int = 4
    live_images: int = 32
    live_videos: int = 4
    max_upload_bytes: int = 256 * 1024 * 1024
    max_image_pixels: int = 25_000_000
    max_frames: int = 3000
    max_duration_s: float = 600.0
    finetune_steps: int | None = None
    finetune_augmentations: int | None = None
    quick_start: int | None = None
    adapt_every: int | None = None
    crf: bool = True
    propagation: str = "bundle"
    frame_cache: int = 8
    checkpoint_s: float = 2.0
    exclusive: bool = True
    job_stale_s: float = 30.0
    resume_jobs: bool = False
    fsync: bool = False
    session_ttl_h: float = 0.0

    def to_json(self) -> str:
        """Every field as a JSON object (how the config reaches uvicorn workers and Ray replicas)."""
        raw = dataclasses.asdict(self)
        raw["data_dir"] = str(self.data_dir)
        raw["api_keys"] = list(self.api_keys)
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str) -> "ServeConfig":
        """The config ``to_json`` wrote (equal to the original)."""
        raw = json.loads(text)
        raw["data_dir"] = Path(raw["data_dir"])
        raw["api_keys"] = tuple(raw["api_keys"])
        return cls(**raw)

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.host)

    @property
    def store_kind(self) -> str:
        """"sqlite" or "postgresql" (``store``); ValueError for anything else."""
        if self.store in ("", "sqlite"):
            return "sqlite"
        if self.store.startswith(("postgresql://", "postgres://")):
            return "postgresql"
        scheme = self.store.split("://")[0] + "://..." if "://" in self.store else self.store  # no password shown
        raise ValueError(f"--store must be a postgresql://user@host:port/database URL (or empty for SQLite in "
                         f"--data-dir), got {scheme!r}")

    def check(self) -> None:
        """Raises ValueError naming the setting when the configuration cannot be served."""
        if not self.api_keys and not self.loopback_only:
            raise ValueError(f"--host {self.host} is reachable beyond this machine: API keys are required "
                             "(--api-key KEY, --api-keys-file FILE or IVOS_API_KEYS=key1,key2); bind to 127.0.0.1 "
                             "to serve without keys")
        for name in ("port", "workers", "request_threads", "job_workers", "live_images", "live_videos",
                     "max_upload_bytes", "max_image_pixels", "max_frames", "frame_cache"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("request_queue", "job_queue"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        from ..settings import PROPAGATIONS

        if self.propagation not in PROPAGATIONS:
            raise ValueError(f"--propagation must be one of {', '.join(PROPAGATIONS)}, got {self.propagation!r}")
        if self.quick_start is not None and self.quick_start < 0:
            raise ValueError(f"--quick-start must be >= 0 (0 = off), got {self.quick_start}")
        if self.adapt_every is not None and self.adapt_every < 0:
            raise ValueError(f"--adapt-every must be >= 0 (0 = off), got {self.adapt_every}")
        if not self.session_ttl_h >= 0:
            raise ValueError(f"--session-ttl-h must be >= 0 (0 = keep sessions), got {self.session_ttl_h}")
        self.store_kind  # raises ValueError for anything but SQLite or a postgresql:// URL
        if not self.job_stale_s > 0:
            raise ValueError(f"--job-stale-s must be positive, got {self.job_stale_s}")
        if not self.store_timeout_s > 0:
            raise ValueError(f"--store-timeout-s must be positive, got {self.store_timeout_s}")
        if not self.max_duration_s > 0:
            raise ValueError(f"--max-duration-s must be positive, got {self.max_duration_s}")
        if any(len(k) < 16 for k in self.api_keys):
            raise ValueError("API keys must be at least 16 characters (e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))')")


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds to loopback only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def keys_from(values: list[str] | tuple[str, ...], keys_file: str | os.PathLike | None = None,
              env: str | None = None) -> tuple[str, ...]:
    """API keys from ``--api-key`` values, a file (one key a line, ``#`` comments) and the
    comma-separated ``IVOS_API_KEYS`` value ``env``; duplicates dropped, order kept."""
    keys = list(values)
    if keys_file:
        for line in Path(keys_file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                keys.append(line)
    if env:
        keys += [k.strip() for k in env.split(",") if k.strip()]
    return tuple(dict.fromkeys(keys))
