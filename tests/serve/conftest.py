"""Fixtures for ``ivos serve``: tiny random-weight bundles (a click bundle and an OSVOS bundle,
exported once per session, ``tests/conftest.py``), a small generated clip, and servers of two
kinds:

* in process (``serve_config`` + ``ivos.serve.testing.in_process``): the app spoken to through
  ``httpx.ASGITransport`` in async tests (``pytestmark = pytest.mark.anyio``): most tests;
* in a subprocess (``make_server``: uvicorn on a free loopback port, real HTTP), where a
  process must be killed or restarted, or several processes share the store (workers, Ray,
  faults, memory, restarts).

The tests check plumbing (sessions, store, limits, jobs, faults), not accuracy; the demo-clip
test uses the shipped bundles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="ivos serve needs the serve extra (pip install 'ivos[serve]')")
pytest.importorskip("httpx", reason="the serve tests need httpx (pip install 'ivos[serve]')")
pytest.importorskip("torch", reason="exporting test bundles needs torch (pip install 'ivos[export]')")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'ivos[cpu]')")

from ivos.serve.config import ServeConfig  # noqa: E402
from ivos.serve.testing import ServerProcess  # noqa: E402

STARTUP_S = 60.0
TEST_SETTINGS = dict(threads=1, finetune_steps=5, finetune_augmentations=3)
"""What both kinds of server run with besides the tiny bundles: one thread, short fine-tuning."""


@pytest.fixture(scope="session")
def anyio_backend():
    """The async tests run on asyncio (the server's pools hand work back to an asyncio loop)."""
    return "asyncio"


@pytest.fixture(scope="session")
def bundles(tiny_bundles) -> dict[str, Path]:
    """{"click": tiny click bundle, "osvos": tiny OSVOS bundle} (``tests/conftest.py``)."""
    return tiny_bundles


@pytest.fixture(scope="session")
def config_for(bundles):
    """``config_for(data_dir, **changes)`` -> a ``ServeConfig`` on the tiny bundles with
    ``TEST_SETTINGS``, then ``changes`` (for ``ivos.serve.testing.in_process``)."""
    def make(data_dir: Path, **changes) -> ServeConfig:
        tiny = dict(model=str(bundles["click"]), osvos_model=str(bundles["osvos"]))
        return ServeConfig(data_dir=data_dir, **{**tiny, **TEST_SETTINGS, **changes})

    return make


@pytest.fixture
def serve_config(tmp_path, config_for):
    """``serve_config(**changes)``: ``config_for`` with a new data dir under ``tmp_path``."""
    made: list[ServeConfig] = []

    def make(**changes) -> ServeConfig:
        made.append(config_for(tmp_path / f"data{len(made)}", **changes))
        return made[-1]

    return make


class Server(ServerProcess):
    """``ivos serve`` on the tiny test bundles (``ivos.serve.testing.ServerProcess``) with
    ``TEST_SETTINGS``; ``args`` are extra flags. Logs go beside ``data_dir``."""

    def __init__(self, data_dir: Path, bundles: dict[str, Path], args: list[str] = ()):
        self.bundles = bundles
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in TEST_SETTINGS.items()]
        super().__init__(data_dir, ["--model", str(bundles["click"]), "--osvos-model", str(bundles["osvos"]),
                                    *flags, *args], startup_s=STARTUP_S)


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


def png_bytes(image: np.ndarray, fmt: str = "PNG") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(name="png_bytes")
def png_bytes_fixture():
    return png_bytes
