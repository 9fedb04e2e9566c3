"""Fixtures for ``ivos serve``: tiny random-weight bundles (a click bundle and an OSVOS bundle,
exported once per session, as in tests/video), a small generated clip, and real servers: uvicorn
started in a subprocess on a free loopback port, spoken to over HTTP.

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

from ivos.serve.testing import ServerProcess  # noqa: E402

STARTUP_S = 60.0


@pytest.fixture(scope="session")
def bundles(tiny_bundles) -> dict[str, Path]:
    """{"click": tiny click bundle, "osvos": tiny OSVOS bundle} (``tests/conftest.py``)."""
    return tiny_bundles


class Server(ServerProcess):
    """``ivos serve`` on the tiny test bundles (``ivos.serve.testing.ServerProcess``): one thread,
    5 fine-tuning steps; ``args`` are extra flags. Logs go beside ``data_dir``."""

    def __init__(self, data_dir: Path, bundles: dict[str, Path], args: list[str] = ()):
        self.bundles = bundles
        super().__init__(data_dir, ["--model", str(bundles["click"]), "--osvos-model", str(bundles["osvos"]),
                                    "--threads", "1", "--finetune-steps", "5", "--finetune-augmentations", "3",
                                    *args], startup_s=STARTUP_S)


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
