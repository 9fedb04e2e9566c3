"""Fixtures for ``ivos serve``: tiny random-weight bundles (a click bundle and an OSVOS bundle,
exported once per session, ``tests/conftest.py``), a small generated clip, and servers of two
kinds:

* in process (``serve_config`` + ``ivos.serve.testing.in_process``): the app spoken to through
  ``httpx.ASGITransport`` in async tests (``pytestmark = pytest.mark.anyio``): most tests;
* in a subprocess (``make_server``: uvicorn on a free loopback port, real HTTP), where a
  process must be killed or restarted, or several processes share the store (workers, Ray,
  faults, memory, restarts).

Both kinds run on each store: ``store_kind`` is parametrised (``sqlite``: the default store
in the data dir; ``postgresql``: a new database on a throw-away PostgreSQL server started for
the test session with ``initdb``/``pg_ctl``, ``ivos.serve.testing.PostgresServer``), so every
test module using these fixtures runs once per store. A module pins one store by defining its
own ``store_kind`` fixture. The PostgreSQL runs skip, saying why, only where PostgreSQL is not
installed (``apt-get install postgresql``; ``.ci/run`` does) or psycopg is missing.

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
from ivos.serve.testing import PostgresServer, ServerProcess, postgres_bin  # noqa: E402

STARTUP_S = 60.0
TEST_SETTINGS = dict(threads=1, finetune_steps=5, finetune_augmentations=3)
"""What both kinds of server run with besides the tiny bundles: one thread, short fine-tuning."""


@pytest.fixture(scope="session")
def anyio_backend():
    """The async tests run on asyncio (the server's pools hand work back to an asyncio loop)."""
    return "asyncio"


STORES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the test session (its own temporary folder and port, unix
    socket, fsync off); tests take new databases of it (``create_database``). Skips when
    PostgreSQL or psycopg is not installed."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed: no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin "
                    "(apt-get install postgresql; .ci/run installs it)")
    pytest.importorskip("psycopg", reason="the PostgreSQL store needs the postgres extra (pip install 'ivos[postgres]')")
    pytest.importorskip("psycopg_pool", reason="the PostgreSQL store needs the postgres extra "
                                               "(pip install 'ivos[postgres]')")
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture(scope="module", params=STORES)
def store_kind(request) -> str:
    """The store this module's servers run on: "sqlite" or "postgresql" (each module runs
    once per store; the PostgreSQL run skips where ``postgres_server`` does)."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
    return request.param


def new_store(request, kind: str) -> str:
    """``ServeConfig.store`` for ``kind``: "" (SQLite in the data dir) or a new PostgreSQL database."""
    return request.getfixturevalue("postgres_server").create_database() if kind == "postgresql" else ""


@pytest.fixture
def store_url(store_kind, request) -> str:
    """This test's store: "" (SQLite in its data dir) or the URL of a new, empty PostgreSQL
    database (``ServeConfig.store``, ``ivos serve --store``)."""
    return new_store(request, store_kind)


@pytest.fixture(scope="module")
def module_store_url(store_kind, request) -> str:
    """``store_url`` for module-scoped servers."""
    return new_store(request, store_kind)


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
def serve_config(tmp_path, config_for, store_url):
    """``serve_config(**changes)``: ``config_for`` with a new data dir under ``tmp_path``, on
    this test's store (``store_url``: the configs of one test share it)."""
    made: list[ServeConfig] = []

    def make(**changes) -> ServeConfig:
        made.append(config_for(tmp_path / f"data{len(made)}", **{"store": store_url, **changes}))
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
def make_server(tmp_path, bundles, store_url):
    """``make_server(*flags, data_dir=None)`` -> a started ``Server`` on this test's store
    (``--store URL`` for PostgreSQL); all are stopped at the end."""
    servers: list[Server] = []

    def make(*args: str, data_dir: Path | None = None, start: bool = True) -> Server:
        store = ["--store", store_url] if store_url else []
        server = Server(data_dir or tmp_path / f"data{len(servers)}", bundles, [*store, *args])
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
