"""Bounded thread pools: heavy work runs off the event loop, and a full pool answers 429 with
``Retry-After`` at once instead of queueing without bound."""
from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from .errors import queue_full


class BoundedPool:
    """``threads`` workers and at most ``queue`` waiting calls; ``submit`` beyond that raises the
    429 ``ApiError`` (``Retry-After: retry_after`` seconds)."""

    def __init__(self, name: str, threads: int, queue: int, *, retry_after: int = 1):
        self.name = name
        self.limit = threads + queue
        self.retry_after = retry_after
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=f"ivos-{name}")
        self._lock = threading.Lock()
        self._inflight = 0

    @property
    def depth(self) -> int:
        """Calls waiting or running."""
        return self._inflight

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        with self._lock:
            if self._inflight >= self.limit:
                raise queue_full(self.name, self.retry_after)
            self._inflight += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future) -> None:
        with self._lock:
            self._inflight -= 1

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the pool, awaited from the event loop."""
        return await asyncio.wrap_future(self.submit(functools.partial(fn, *args, **kwargs)))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
