"""Fixtures for ``ivos serve``: tiny random-weight bundles (a click bundle and an OSVOS bundle,
exported once per session, as in tests/video), a small generated clip, and real servers: uvicorn
started in a subprocess on a free loopback port, spoken to over HTTP.

The tests check plumbing (sessions, store, limits, jobs, faults), not accuracy; the demo-clip
test uses the shipped bundles."""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="ivos serve needs the serve extra (pip install 'ivos[serve]')")
pytest.importorskip("httpx", reason="the serve tests need httpx (pip install 'ivos[serve]')")
torch = pytest.importorskip("torch", reason="exporting test bundles needs torch (pip install 'ivos[export]')")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'ivos[cpu]')")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TINY = dict(widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), stem_width=8, head_width=8, skip_width=8, decoder_width=8)
STARTUP_S = 60.0


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """{"click": tiny click bundle, "osvos": tiny OSVOS bundle}."""
    from ivos.export.models import ClickNetConfig, build_model
    from ivos.export.onnx_export import export_click_bundle
    from ivos.export.osvos import OSVOS_CONFIGS, build_osvos
    from ivos.export.osvos_export import export_osvos_bundle

    root = tmp_path_factory.mktemp("serve-bundles")
    torch.manual_seed(0)
    click = build_model(ClickNetConfig(name="tiny", **TINY))
    export_click_bundle(click, root / "click-tiny", name="tiny", version="test", click_encoding="gaussian",
                        click_sigma=5.0, click_channels=1, working_size=64, mean=MEAN, std=STD, n_checks=1)
    config = dataclasses.replace(OSVOS_CONFIGS["osvos-cpu"], name="osvos-tiny", working_size=(64, 96))
    export_osvos_bundle(build_osvos(config, click), root / "osvos-tiny", version="test", mean=MEAN, std=STD)
    return {"click": root / "click-tiny", "osvos": root / "osvos-tiny"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``ivos serve`` in a subprocess on 127.0.0.1 (``start``, ``stop``, ``kill`` = SIGKILL).
    ``args`` are extra command-line flags; the log goes to ``data_dir/../server-N.log``."""

    def __init__(self, data_dir: Path, bundles: dict[str, Path], args: list[str] = ()):
        self.data_dir, self.bundles, self.args = data_dir, bundles, list(args)
        self.proc: subprocess.Popen | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.starts = 0

    def command(self) -> list[str]:
        return [sys.executable, "-m", "ivos.serve.cli", "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--model", str(self.bundles["click"]), "--osvos-model", str(self.bundles["osvos"]),
                "--threads", "1", "--finetune-steps", "5", "--finetune-augmentations", "3", "--log-level",
                "warning", *self.args]

    def start(self) -> "Server":
        import httpx

        self.starts += 1
        self.log = self.data_dir.parent / f"server-{self.port}-{self.starts}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.command(), stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + STARTUP_S
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
        raise RuntimeError(f"ivos serve not ready after {STARTUP_S} s:\n{self.log.read_text()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
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
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss


@pytest.fixture(scope="session")
def server_class():
    """The ``Server`` class (test modules cannot import conftest in importlib mode)."""
    return Server


@pytest.fixture
def make_server(tmp_path, bundles):
    """``make_server(*flags, data_dir=None)`` -> a started ``Server``; all are stopped at the end."""
    servers: list[Server] = []

    def make(*args: str, data_dir: Path | None = None, start: bool = True) -> Server:
        server = Server(data_dir or tmp_path / f"data{len(servers)}", bundles, list(args))
        servers.append(server)
        return server.start() if start else server

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, bundles):
    """One server for a module's tests that only need a running server (no keys)."""
    server = Server(tmp_path_factory.mktemp("shared") / "data", bundles).start()
    yield server
    server.stop()


def png_bytes(image: np.ndarray, fmt: str = "PNG") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(name="png_bytes")
def png_bytes_fixture():
    return png_bytes
