"""Fixtures for the web editor's tests: a real ``ivos serve`` (uvicorn in a subprocess on a free
loopback port, as tests/serve) and a real headless Chromium driven by Selenium for the browser
tests; the app in process (``web_config`` + ``ivos.serve.testing.in_process``) for its routes.

The server runs the shipped click bundle (``ivos-lite0``: a click on the demo clip's object
gives the object, so the overlay can be checked at the object and away from it) with a tiny
random-weight OSVOS bundle exported once per session (propagation in seconds: the browser test
checks the editor, not OSVOS's accuracy, which tests/serve/test_demo_clip.py holds).

Chromium is Debian's ``chromium`` + ``chromium-driver`` (``.ci/run`` installs them when missing);
without them the tests skip saying so."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="ivos serve needs the serve extra (pip install 'ivos[serve]')")
pytest.importorskip("httpx", reason="the web tests need httpx (pip install 'ivos[serve]')")
pytest.importorskip("selenium", reason="the browser tests need selenium (pip install 'ivos[test]')")
pytest.importorskip("torch", reason="exporting the test OSVOS bundle needs torch (pip install 'ivos[export]')")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'ivos[cpu]')")
pytest.importorskip("av", reason="the demo clip is an mp4: reading it needs PyAV (pip install 'ivos[video]')")

from ivos.serve.config import ServeConfig  # noqa: E402
from ivos.serve.testing import ServerProcess  # noqa: E402

STARTUP_S = 120.0
EDITOR_SETTINGS = dict(model="ivos-lite0", threads=1, finetune_steps=5, finetune_augmentations=2)
"""What the editor's servers run besides the tiny OSVOS bundle."""


@pytest.fixture(scope="session")
def anyio_backend():
    """The async tests run on asyncio (the server's pools hand work back to an asyncio loop)."""
    return "asyncio"


@pytest.fixture(scope="session")
def osvos_tiny(tiny_bundles) -> Path:
    """The suite's tiny random-weight OSVOS bundle (64x96 working size, ``tests/conftest.py``)."""
    return tiny_bundles["osvos"]


class Server(ServerProcess):
    """``ivos serve`` with the shipped click bundle and the tiny OSVOS bundle
    (``ivos.serve.testing.ServerProcess``); ``args`` are extra flags."""

    def __init__(self, data_dir: Path, osvos: Path, args: list[str] = ()):
        self.osvos = osvos
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in EDITOR_SETTINGS.items()]
        super().__init__(data_dir, ["--osvos-model", str(osvos), *flags, *args], startup_s=STARTUP_S)


@pytest.fixture
def web_config(tmp_path, osvos_tiny):
    """``web_config(**changes)`` -> the ``ServeConfig`` of ``Server`` (``EDITOR_SETTINGS``) with
    its data under ``tmp_path``, for ``in_process``."""
    def make(**changes) -> ServeConfig:
        return ServeConfig(data_dir=tmp_path / "data", osvos_model=str(osvos_tiny), **{**EDITOR_SETTINGS, **changes})

    return make


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
