"""``ServerProcess``: ``ivos serve`` in a subprocess on a free loopback port, for tests and
benchmarks (the one harness: tests/serve, tests/web and ``ivos.bench.serve`` / ``web_editor``
use it). Start waits for ``/readyz``; stop is SIGTERM (then SIGKILL after 15 s); ``kill`` is
SIGKILL at once (no shutdown code runs: crash tests). The server's output goes to a log file,
shown in the error when it exits or never gets ready."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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
