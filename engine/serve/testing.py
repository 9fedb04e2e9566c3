"""Test harnesses of ``ivos serve``, for tests and benchmarks:

* ``in_process(config)``: the app in this process, spoken to through ``httpx.ASGITransport``
  (no socket, no subprocess): what plumbing tests use. Its lifespan runs (models loaded
  before the first request, heartbeat, shutdown at the end).
* ``ServerProcess``: ``ivos serve`` in a subprocess on a free loopback port, for what needs a
  real process (killed, restarted, several workers, Ray, its memory, a browser) and for the
  benchmarks. Start waits for ``/readyz``; stop is SIGTERM (then SIGKILL after 15 s); ``kill``
  is SIGKILL at once (no shutdown code runs: crash tests). The server's output goes to a log
  file, shown in the error when it exits or never gets ready.
* ``PostgresServer``: a throw-away PostgreSQL cluster (``initdb`` + ``pg_ctl`` in a temporary
  folder) for the PostgreSQL store's tests and benchmark; ``postgres_bin`` finds the programs.
* ``RayCluster``: a Ray cluster of several nodes on this machine (``ray start --block`` per
  node, each in its own temporary folder and process group), whose nodes can be killed
  (SIGKILL of the raylet, its workers and agents) and which is torn down without touching any
  other Ray on the machine: for the multi-node Ray Serve tests and benchmark.
* ``LabelStudioProcess``: a real Label Studio (``scripts/setup_label_studio.sh`` installs it)
  with a user and an API token, for the Label Studio tests and benchmark.
"""
from __future__ import annotations

import os
import secrets
import shutil
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


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """SIGTERM to the process group of ``proc`` (started with ``start_new_session=True``), then
    SIGKILL when it has not exited after ``timeout_s``; nothing when it already exited."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_ready(proc: subprocess.Popen, url: str, log: Path, what: str, startup_s: float, interval_s: float) -> bool:
    """Polls ``url`` until it answers 200 (True) or ``startup_s`` pass (False); RuntimeError with
    the end of ``log`` when ``proc`` exits first."""
    import httpx

    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(interval_s)
    return False


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
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log = self.log_dir / f"server-{self.port}-{self.starts}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if wait_ready(self.proc, self.url + "/readyz", self.log, "ivos serve", self.startup_s, 0.2):
            return self
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


# ---------------------------------------------------------------- Ray

class RayNode:
    """A node of a ``RayCluster``: its ``ray start --block`` process (leader of a session
    holding the raylet, its workers and agents, and on the head the GCS), folder and log."""

    def __init__(self, name: str, proc: subprocess.Popen, folder: Path, log: Path):
        self.name, self.proc, self.folder, self.log = name, proc, folder, log

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pids(self) -> list[int]:
        """The node's processes: those of the session its ``ray start`` leads (Ray's workers
        run in process groups of their own, in that session)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.getsid(int(entry)) == self.proc.pid:
                        found.append(int(entry))
                except OSError:  # gone meanwhile
                    pass
        return found

    def signal(self, sig: int) -> None:
        """``sig`` to every process of the node."""
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


class RayCluster:
    """A Ray cluster of several nodes on this machine, for tests and benchmarks: ``add_node``
    runs ``ray start --block`` (the first one ``--head``) with ``--num-cpus``, custom
    ``resources`` and ``--node-name``, its own ``--temp-dir`` under ``root`` and free ports, in
    a new session, so the node's processes (raylet, workers, agents, the head's GCS) are that
    session's: ``kill(name)`` SIGKILLs them all (a machine lost), ``close()`` ends every node
    (SIGTERM, SIGKILL after ``grace_s``). Nothing else is touched: never ``ray stop``,
    which ends every Ray process of the machine. ``address`` is the head's GCS address for
    ``ray.init`` / ``ivos serve --ray-address``, run with ``env`` (it holds the cluster's
    authentication token, ``RAY_AUTH_TOKEN``). The folders go under ``root`` (default /tmp:
    Ray's unix socket paths must stay short) and are deleted by ``close``."""

    STARTED = "Ray runtime started"

    def __init__(self, root: str | None = None, *, object_store_mb: int = 80, startup_s: float = 120.0):
        import tempfile

        # short: Ray's unix sockets live under each node's --temp-dir (107 bytes at most)
        self.root = Path(tempfile.mkdtemp(prefix="ivr-", dir=root or "/tmp"))
        self.object_store_mb, self.startup_s = object_store_mb, startup_s
        self.gcs_port = free_port()
        self.nodes: dict[str, RayNode] = {}
        self.ray = str(Path(sys.executable).with_name("ray"))
        # token authentication with a token of this cluster's own, given to its every process
        # (and to drivers through ``env``)
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    # Serve's proxy sends requests to the replica of its own node while that one
                    # keeps up: off, so one proxy on the head spreads them over every node
                    "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0"}
        self.env.pop("RAY_ADDRESS", None)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def add_node(self, name: str, *, cpus: float = 1, resources: dict[str, float] | None = None) -> RayNode:
        """Starts a node (the head when it is the first) and waits until it runs."""
        import json

        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        head = not self.nodes
        ports = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
        args = [self.ray, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
                "--resources", json.dumps(resources or {}), "--node-name", name, "--temp-dir", str(folder),
                "--object-store-memory", str(self.object_store_mb * 2 ** 20), "--disable-usage-stats",
                *[x for flag in ports for x in (flag, str(free_port()))]]
        if head:
            args += ["--head", "--port", str(self.gcs_port), "--include-dashboard", "false",
                     "--ray-client-server-port", str(free_port())]
        else:
            args += ["--address", self.address]
        log = self.root / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        node = self.nodes[name] = RayNode(name, proc, folder, log)
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start of node {name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if self.STARTED in log.read_text():
                return node
            time.sleep(0.3)
        raise RuntimeError(f"Ray node {name} not started after {self.startup_s:.0f} s:\n{log.read_text()[-3000:]}")

    def kill(self, name: str) -> None:
        """SIGKILL of the node's every process (raylet, workers, agents): the machine is lost."""
        node = self.nodes[name]
        for _ in range(3):  # a worker forked meanwhile
            node.signal(signal.SIGKILL)
            time.sleep(0.05)
        node.proc.wait()

    def close(self, grace_s: float = 15.0) -> None:
        """Ends every node, the head last (SIGTERM to each process group, SIGKILL after ``grace_s``)."""
        for node in reversed(list(self.nodes.values())):
            if node.alive():
                node.proc.send_signal(signal.SIGTERM)  # ray start --block ends its processes
                try:
                    node.proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    pass
            node.signal(signal.SIGKILL)  # what is left of the node
            node.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "RayCluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------- PostgreSQL

def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (``initdb``, ``pg_ctl``, ``postgres``): from
    ``PATH``, else Debian's ``/usr/lib/postgresql/<version>/bin`` (the newest); None when there
    is none (``apt-get install postgresql``)."""
    import glob
    import shutil

    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
             if Path(p).with_name("pg_ctl").is_file()]

    def version(bin_dir: Path) -> list[int]:
        return [int(x) if x.isdigit() else 0 for x in bin_dir.parent.name.split(".")]
    return max(found, key=version) if found else None


class PostgresServer:
    """A throw-away PostgreSQL cluster for tests and benchmarks: ``initdb`` in a new temporary
    folder, ``pg_ctl start`` on a free port with its unix socket in that folder (and on
    127.0.0.1 with ``tcp=True``), a superuser ``ivos`` with trust authentication (nothing but
    this machine can connect). Run as root, the programs run as the ``postgres`` user
    (PostgreSQL refuses root; ``nobody`` where there is none), which owns the folder.

    ``durable=False`` (tests) turns ``fsync`` off: nothing waits for the disk, and a crash of
    the machine could lose the cluster, which is thrown away anyway. ``durable=True``
    (benchmarks) keeps PostgreSQL's defaults. ``stop(mode)`` / ``start()`` restart it on the
    same port and data (``mode``: "fast" rolls back open transactions and closes connections,
    "immediate" is a crash); ``create_database()`` gives the URL of a new empty database."""

    def __init__(self, *, tcp: bool = False, durable: bool = False, max_connections: int = 200,
                 bin_dir: Path | None = None):
        import pwd
        import tempfile

        self.bin = Path(bin_dir) if bin_dir else postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) are not installed: "
                               "apt-get install postgresql")
        self.tcp, self.durable, self.max_connections = tcp, durable, max_connections
        self.root = Path(tempfile.mkdtemp(prefix="ivos-pg-"))
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        self.port = free_port()
        self.user: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pw = pwd.getpwnam("nobody")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self._databases = 0
        self._initialised = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, cwd=self.root,
                           env={**os.environ, "LC_ALL": "C", "LANG": "C"}, **self.user)
        if check and r.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.is_file() else ""
            raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stdout}{r.stderr}{log}")
        return r

    @property
    def host(self) -> str:
        return "127.0.0.1" if self.tcp else str(self.root)

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server (over TCP with ``tcp=True``, else the socket)."""
        if self.tcp:
            return f"postgresql://ivos@127.0.0.1:{self.port}/{database}"
        return f"postgresql://ivos@/{database}?host={self.root}&port={self.port}"

    def start(self) -> "PostgresServer":
        if not self._initialised:
            self._run("initdb", "-D", str(self.data), "-U", "ivos", "-A", "trust", "-E", "UTF8", "--no-locale",
                      "--no-sync")
            self._initialised = True
        options = [f"-p {self.port}", f"-k {self.root}", f"-c max_connections={self.max_connections}",
                   "-c listen_addresses=" + ("127.0.0.1" if self.tcp else "''")]
        if not self.durable:
            options += ["-c fsync=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", " ".join(options))
        return self

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode`` (no error when it is not running)."""
        if self._initialised and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (``name`` or ``ivos_<n>``); returns its URL."""
        import psycopg

        self._databases += 1
        name = name or f"ivos_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        """Stops the server and deletes its folder."""
        import shutil

        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------- Label Studio

LABEL_STUDIO_VENV = Path(__file__).resolve().parents[2] / ".venv-label-studio"
"""Where ``scripts/setup_label_studio.sh`` installs Label Studio (its own venv: its pins clash
with ours)."""

LABEL_STUDIO_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="mask" toName="image">
    <Label value="Object" background="#ff0000"/>
  </BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="Object" smart="true" background="#ff0000" showInline="true"/>
  </KeyPointLabels>
  <RectangleLabels name="box" toName="image" smart="true">
    <Label value="Object" background="#ff0000" showInline="true"/>
  </RectangleLabels>
</View>"""
"""A labelling config for ivos: an image, the brush masks ivos answers with, and the smart
keypoints (clicks, Alt+click negative) and rectangles that ask for them."""


LABEL_STUDIO_SERVERS = ("runserver", "gunicorn")
"""How ``LabelStudioProcess`` serves Label Studio: ``label-studio start`` as it comes (Django's
development server, ``runserver``), or the same start (migrations, user, token) with the
app served by gunicorn (2 worker processes x 4 threads), as a production deployment does
(gunicorn must be installed in Label Studio's venv: ``scripts/setup_label_studio.sh``)."""

GUNICORN_LAUNCHER = """
import sys
import label_studio.server as server

def serve(host, port):
    from gunicorn.app.wsgiapp import WSGIApplication
    sys.argv = ["gunicorn", "--bind", f"{host}:{port}", "--workers", "2", "--threads", "4",
                "--access-logfile", "-", "core.wsgi:application"]
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()

server._app_run = serve
sys.argv = ["label-studio", *sys.argv[1:]]
server.main()
"""
"""``label-studio start`` with its last step (Django's ``runserver``) replaced by gunicorn."""


class LabelStudioProcess:
    """A real Label Studio on a free loopback port with a throw-away data folder, a user and a
    legacy API token (``token``), for the end-to-end tests and the benchmark. Start waits for
    ``/health`` (30-60 s the first time: database migrations). ``api(method, path, **kw)``
    calls its REST API with the token. Needs ``scripts/setup_label_studio.sh`` first."""

    USER, PASSWORD, TOKEN = "ivos@example.com", "ivos-test-password", "ivos-test-token-0123456789"

    def __init__(self, data_dir: Path, *, venv: Path = LABEL_STUDIO_VENV, startup_s: float = 300.0,
                 server: str = "runserver", log_level: str = "DEBUG"):
        if server not in LABEL_STUDIO_SERVERS:
            raise ValueError(f"server must be one of {LABEL_STUDIO_SERVERS}, got {server!r}")
        self.data_dir, self.venv, self.startup_s = Path(data_dir), Path(venv), startup_s
        self.server, self.log_level = server, log_level
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = self.TOKEN
        self.log = self.data_dir.parent / f"{self.data_dir.name}-label-studio.log"
        self.proc: subprocess.Popen | None = None

    @property
    def executable(self) -> Path:
        return self.venv / "bin" / "label-studio"

    def start(self) -> "LabelStudioProcess":
        if not self.executable.is_file():
            raise RuntimeError(f"no Label Studio at {self.executable}: run scripts/setup_label_studio.sh")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ,
               "LABEL_STUDIO_USERNAME": self.USER, "LABEL_STUDIO_PASSWORD": self.PASSWORD,
               "LABEL_STUDIO_USER_TOKEN": self.TOKEN,
               "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # applied when the organisation is created
               "LABEL_STUDIO_HOST": self.url,                   # what /setup tells the backend
               "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
               "ML_BLOCK_LOCAL_IP": "false",        # the backend is on loopback: allow it ...
               "SSRF_PROTECTION_ENABLED": "false",  # ... and its webhook
               "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "LOG_LEVEL": self.log_level}
        args = ["start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        command = [str(self.executable), *args] if self.server == "runserver" else \
            [str(self.venv / "bin" / "python"), "-c", GUNICORN_LAUNCHER, *args]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait_ready(self.proc, self.url + "/health", self.log, "label-studio", self.startup_s, 0.5):
            return self
        self.stop()
        raise RuntimeError(f"label-studio not healthy after {self.startup_s:.0f} s:\n{self.log.read_text()[-4000:]}")

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST call with the token; the response (``httpx.Response``)."""
        import httpx

        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=kwargs.pop("timeout", 120), **kwargs)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, 20)

    def __enter__(self) -> "LabelStudioProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
