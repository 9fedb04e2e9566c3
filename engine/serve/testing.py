"""Test harnesses of ``ivos serve``, for tests and benchmarks:

* ``in_process(config)``: the app in this process, spoken to through ``httpx.ASGITransport``
  (no socket, no subprocess): what plumbing tests use. Its lifespan runs (models loaded
  before the first request, heartbeat, shutdown at the end).
* ``ServerProcess``: ``ivos serve`` in a subprocess on a free loopback port, for what needs a
  real process (killed, restarted, several workers, Ray, its memory, a browser) and for the
  benchmarks. Start waits for ``/readyz``; stop is SIGTERM (then SIGKILL after 15 s); ``kill``
  is SIGKILL at once (no shutdown code runs: crash tests). The server's output goes to a log
  file, shown in the error when it exits or never gets ready.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

IN_PROCESS_URL = "http://ivos.test"
"""The base URL of an in-process app (never resolved: requests go through the transport)."""


@dataclass
class InProcessApp:
    """An app of ``in_process``: ``http`` an ``httpx.AsyncClient`` on it (the API key of
    ``in_process`` in its headers), ``data_dir`` the server's."""

    app: Any
    http: Any
    data_dir: Path

    def transport(self) -> "LoopTransport":
        """A synchronous transport to the app, for code in a worker thread of this event loop."""
        return LoopTransport(self.app)

    def client(self, api_key: str | None = None, **kwargs: Any) -> Any:
        """An ``ivos.Client`` on the app, for code in a worker thread of this event loop
        (``anyio.to_thread.run_sync``)."""
        from ..client import Client

        return Client(IN_PROCESS_URL, api_key, transport=self.transport(), **kwargs)


@asynccontextmanager
async def in_process(config: Any, *, api_key: str | None = None) -> AsyncIterator[InProcessApp]:
    """``create_app(config)`` in this process with its lifespan running (the models are loaded
    when this enters); yields an ``InProcessApp`` whose ``http`` sends ``api_key``."""
    import httpx

    from .app import create_app

    app = create_app(config, load_in_background=False)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=IN_PROCESS_URL,
                                     headers=headers, timeout=60) as http:
            yield InProcessApp(app, http, Path(config.data_dir))


class LoopTransport:
    """A synchronous ``httpx`` transport to an ASGI app served by an event loop, for code running
    in a worker thread of that loop (``anyio.to_thread.run_sync``): each request is sent through
    ``httpx.ASGITransport`` on the loop (``anyio.from_thread.run``) and its response read whole
    (an event stream arrives when it ends)."""

    def __init__(self, app: Any):
        import httpx

        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: Any) -> Any:
        import anyio.from_thread
        import httpx

        async def send() -> tuple[int, Any, bytes]:
            response = await self._asgi.handle_async_request(request)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = anyio.from_thread.run(send)
        return httpx.Response(status, headers=headers, content=content)

    def close(self) -> None:
        pass

    def __enter__(self) -> "LoopTransport":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


STARTUP_S = 180.0
"""Seconds ``start`` waits for ``/readyz`` (a cold start loads the models and ONNX Runtime)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``ivos serve --port <free> --data-dir <data_dir> --log-level warning <args>``.

    Args:
        data_dir: the server's ``--data-dir``.
        args: more flags (models, threads, limits, ...).
        log_dir: where ``server-<port>-<start>.log`` goes (default: beside ``data_dir``).
    """

    def __init__(self, data_dir: Path, args: list[str] = (), *, log_dir: Path | None = None,
                 startup_s: float = STARTUP_S):
        self.data_dir, self.args = Path(data_dir), list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_dir = Path(log_dir) if log_dir is not None else self.data_dir.parent
        self.startup_s = startup_s
        self.starts = 0
        self.log: Path | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "ivos.serve.cli", "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--log-level", "warning", *self.args]

    def start(self) -> "ServerProcess":
        """Starts the server (again, after ``stop``/``kill``: same port and data) and waits until
        ``/readyz`` answers 200. RuntimeError with the log when it exits or is not ready in time."""
        import httpx

        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log = self.log_dir / f"server-{self.port}-{self.starts}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ivos serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ivos serve not ready after {self.startup_s} s:\n{self.log.read_text()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (graceful shutdown), SIGKILL if it has not exited after 15 s."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def rss_bytes(self) -> int:
        """Resident memory of the server process (needs psutil)."""
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
