"""Fixtures for the web editor's browser tests: a real ``ivos serve`` (uvicorn in a subprocess on
a free loopback port, as tests/serve) and a real headless Chromium driven by Selenium.

The server runs the shipped click bundle (``ivos-lite0``: a click on the demo clip's object
gives the object, so the overlay can be checked at the object and away from it) with a tiny
random-weight OSVOS bundle exported once per session (propagation in seconds: the browser test
checks the editor, not OSVOS's accuracy, which tests/serve/test_demo_clip.py holds).

Chromium is Debian's ``chromium`` + ``chromium-driver`` (``.ci/run`` installs them when missing);
without them the tests skip saying so."""
from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="ivos serve needs the serve extra (pip install 'ivos[serve]')")
pytest.importorskip("httpx", reason="the web tests need httpx (pip install 'ivos[serve]')")
pytest.importorskip("selenium", reason="the browser tests need selenium (pip install 'ivos[test]')")
torch = pytest.importorskip("torch", reason="exporting the test OSVOS bundle needs torch (pip install 'ivos[export]')")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'ivos[cpu]')")
pytest.importorskip("av", reason="the demo clip is an mp4: reading it needs PyAV (pip install 'ivos[video]')")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TINY = dict(widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), stem_width=8, head_width=8, skip_width=8, decoder_width=8)
STARTUP_S = 120.0


@pytest.fixture(scope="session")
def osvos_tiny(tmp_path_factory) -> Path:
    """A tiny random-weight OSVOS bundle (64x96 working size)."""
    from ivos.export.models import ClickNetConfig, build_model
    from ivos.export.osvos import OSVOS_CONFIGS, build_osvos
    from ivos.export.osvos_export import export_osvos_bundle

    root = tmp_path_factory.mktemp("web-bundles")
    torch.manual_seed(0)
    click = build_model(ClickNetConfig(name="tiny", **TINY))
    config = dataclasses.replace(OSVOS_CONFIGS["osvos-cpu"], name="osvos-tiny", working_size=(64, 96))
    export_osvos_bundle(build_osvos(config, click), root / "osvos-tiny", version="test", mean=MEAN, std=STD)
    return root / "osvos-tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``ivos serve`` in a subprocess on 127.0.0.1; the log goes next to the data folder."""

    def __init__(self, data_dir: Path, osvos: Path, args: list[str] = ()):
        self.data_dir, self.osvos, self.args = data_dir, osvos, list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "ivos.serve.cli", "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--model", "ivos-lite0", "--osvos-model", str(self.osvos), "--threads", "1",
                "--finetune-steps", "5", "--finetune-augmentations", "2", "--log-level", "warning", *self.args]

    def start(self) -> "Server":
        import httpx

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

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def web_server(tmp_path_factory, osvos_tiny):
    server = Server(tmp_path_factory.mktemp("web") / "data", osvos_tiny).start()
    yield server
    server.stop()


def make_driver(download_dir: Path, *, width: int = 1280, height: int = 720):
    """A headless Chromium of ``width`` x ``height`` CSS pixels whose downloads go to
    ``download_dir`` (``ivos.bench.web_editor.make_driver``, which the benchmark uses too); skips
    when no Chromium is installed."""
    from ivos.bench.web_editor import find_browser
    from ivos.bench.web_editor import make_driver as chromium

    found = find_browser()
    if found is None:
        pytest.skip("no Chromium: apt-get install chromium chromium-driver (or set IVOS_CHROMIUM and "
                    "IVOS_CHROMEDRIVER)")
    return chromium(*found, download_dir, width=width, height=height)


@pytest.fixture
def browser(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = make_driver(downloads)
    driver.downloads = downloads
    yield driver
    driver.quit()
