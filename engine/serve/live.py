"""In-memory caches of live sessions: a bounded LRU (``LiveCache``) and striped locks
(``SessionLocks``), both of fixed size whatever the number of sessions."""
from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class LiveCache(Generic[T]):
    """session id -> (rev, value), least recently used evicted beyond ``capacity``. An entry is
    valid only at the rev it was built for: ``get(id, rev)`` misses when the store moved on
    (another process changed the session). ``pin``ned entries (a running job's state) are
    never evicted."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[int, T]] = OrderedDict()
        self._pins: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, rev: int) -> T | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != rev:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, rev: int, value: T) -> None:
        with self._lock:
            self._items[key] = (rev, value)
            self._items.move_to_end(key)
            self._evict()

    def _evict(self) -> None:
        excess = len(self._items) - self.capacity
        for key in list(self._items):
            if excess <= 0:
                break
            if key not in self._pins:
                del self._items[key]
                excess -= 1

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def pin(self, key: str) -> None:
        with self._lock:
            self._pins[key] = self._pins.get(key, 0) + 1

    def unpin(self, key: str) -> None:
        with self._lock:
            n = self._pins.get(key, 0) - 1
            if n <= 0:
                self._pins.pop(key, None)
            else:
                self._pins[key] = n
            self._evict()


class SessionLocks:
    """One lock per session, striped over a fixed number of locks (memory does not grow with
    the number of sessions; two sessions sharing a stripe merely wait for each other)."""

    def __init__(self, stripes: int = 256):
        self._locks = [threading.RLock() for _ in range(stripes)]

    def __call__(self, session_id: str) -> Any:
        return self._locks[zlib.crc32(session_id.encode()) % len(self._locks)]
