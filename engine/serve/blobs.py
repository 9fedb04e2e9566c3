"""Session blobs: the files of a session (the uploaded image or video, the frames of a frame
upload, ``VideoState`` files, exports) behind one small interface, ``Blobs``, so that no
server process depends on its own disk:

* ``LocalBlobs``: files under a folder (``--data-dir``, the default; or a folder every server
  mounts, ``--blobs DIR``). What ``ivos serve`` always did.
* ``ivos.serve.store_postgres.PostgresBlobs``: in the PostgreSQL database of the session store
  (``--store postgresql://...``), chunked, each blob written in one transaction, with a local
  read-through copy for what the libraries read from a path (a video to decode, a state file).

Keys are relative POSIX paths (``sessions/<id>/image-3-a1b2.png``, ``sessions/<id>/frames``).
A key is written once and never changed (a new revision gets a new key): that is what makes a
local copy of a blob always valid. A "tree" (``put_tree``) is the files under a folder, stored
as ``<key>/<relative name>``; ``fetch`` of the tree's key gives the folder back.

Every ``put`` is atomic: readers see the whole blob or none of it (a crash in between leaves
no half-written blob, at most an orphan that ``ivos.serve.service.Service.sweep_blobs``
removes).
"""
from __future__ import annotations

import os
import secrets
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator


class BlobNotFound(KeyError):
    """No blob (nor tree) under this key."""


@dataclass(frozen=True)
class BlobInfo:
    """A blob: ``key``, ``size`` in bytes, ``created`` (epoch s)."""

    key: str
    size: int
    created: float


def check_key(key: str) -> str:
    """``key`` when it is a relative POSIX path without ``.``/``..`` parts; ValueError otherwise
    (keys are made by the server, never taken from a client: this is a second guard)."""
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or "\\" in key or any(p in (".", "..") for p in parts) or \
            "/".join(parts) != key:
        raise ValueError(f"bad blob key {key!r}")
    return key


class Blobs(ABC):
    """Where session files live. ``path(key)`` is where this process keeps the key's file (the
    blob itself for ``LocalBlobs``, a local copy otherwise): files are written there and then
    ``put_file`` / ``put_tree`` make them the blob; ``fetch(key)`` returns that path with the
    blob's content (downloading it when needed)."""

    local: bool = False
    """Whether ``path(key)`` is the blob itself (nothing is copied)."""

    @abstractmethod
    def path(self, key: str) -> Path:
        """This process's local path of ``key`` (it may not exist yet)."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Makes the file at ``path`` the blob ``key`` (atomic)."""

    @abstractmethod
    def put_tree(self, key: str, folder: Path) -> None:
        """Makes every file under ``folder`` the blob ``key/<relative name>`` (all or none)."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Stores ``data`` as blob ``key`` (atomic)."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """The blob's bytes as a readable binary file (streamed; close it). BlobNotFound."""

    @abstractmethod
    def fetch(self, key: str) -> Path:
        """A local path holding blob ``key`` (a file) or tree ``key`` (a folder). BlobNotFound."""

    @abstractmethod
    def list(self, prefix: str) -> list[BlobInfo]:
        """The blobs whose key starts with ``prefix`` (e.g. ``sessions/<id>/``), by key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Deletes blob ``key`` and every blob under ``key/`` (and their local copies); no error
        when there is none."""

    def get(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def exists(self, key: str) -> bool:
        try:
            self.open(key).close()
            return True
        except BlobNotFound:
            return False

    def forget(self, key: str) -> None:
        """Drops this process's local copy of ``key`` (the blob stays); nothing for ``LocalBlobs``."""

    def close(self) -> None:
        """Releases what the blobs hold (connections)."""


def atomic_copy(source: BinaryIO, target: Path, *, expected: int | None = None) -> Path:
    """Copies the stream ``source`` to ``target`` through a temporary file beside it, renamed
    over ``target`` when complete (and, with ``expected``, when exactly that many bytes came)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
            size = out.tell()
        if expected is not None and size != expected:
            raise OSError(f"blob copy of {target.name}: {size} bytes, expected {expected}")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def remove_path(path: Path) -> None:
    """Deletes the file or folder tree at ``path``; nothing there is fine."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class LocalBlobs(Blobs):
    """Blobs as files under ``root``: blob ``k`` is the file ``root/k``. Writes go straight to
    their place (``path(key)``) and ``put_file`` of that path only flushes it (``fsync``: with
    ``--fsync``); a file from elsewhere is copied in atomically."""

    local = True

    def __init__(self, root: str | os.PathLike, *, fsync: bool = False):
        self.root = Path(root).resolve()
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _sync(self, path: Path) -> None:
        if self.fsync:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def put_file(self, key: str, path: Path) -> None:
        target = self.path(key)
        if Path(path).resolve() != target:
            with open(path, "rb") as source:
                atomic_copy(source, target)
        self._sync(target)

    def put_tree(self, key: str, folder: Path) -> None:
        target = self.path(key)
        if Path(folder).resolve() != target:
            tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
            shutil.copytree(folder, tmp)
            os.replace(tmp, target)
        if self.fsync:
            for file in sorted(p for p in target.rglob("*") if p.is_file()):
                self._sync(file)

    def put(self, key: str, data: bytes) -> None:
        import io

        atomic_copy(io.BytesIO(data), self.path(key))
        self._sync(self.path(key))

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise BlobNotFound(key) from None

    def fetch(self, key: str) -> Path:
        path = self.path(key)
        if not path.exists():
            raise BlobNotFound(key)
        return path

    def list(self, prefix: str) -> list[BlobInfo]:
        # the folder holding the prefix, then the keys that start with it
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root / head if head else self.root
        if not base.is_dir():
            return []
        out = []
        for folder, _dirs, files in os.walk(base):
            for name in files:
                path = Path(folder) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix) and not name.startswith("."):
                    try:
                        st = path.stat()
                    except FileNotFoundError:
                        continue
                    out.append(BlobInfo(key, st.st_size, st.st_mtime))
        return sorted(out, key=lambda b: b.key)

    def delete(self, key: str) -> None:
        remove_path(self.path(key))


class LocalCopies:
    """The local copies of remote blobs under ``root`` (a process's ``--data-dir``/cache):
    ``path(key)`` = ``root/key``. Copies are only ever complete (written to a temporary file
    and renamed) and stay valid as long as the blob exists, keys being written once."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def forget(self, key: str) -> None:
        remove_path(self.path(key))

    def sessions(self) -> Iterator[Path]:
        """The session folders holding copies (``root/sessions/<id>``)."""
        folder = self.root / "sessions"
        if folder.is_dir():
            yield from (p for p in folder.iterdir() if p.is_dir())


def older_than(blobs: list[BlobInfo], seconds: float) -> list[BlobInfo]:
    """The blobs created more than ``seconds`` ago."""
    limit = time.time() - seconds
    return [b for b in blobs if b.created < limit]
