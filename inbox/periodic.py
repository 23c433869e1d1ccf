"""A background round every few seconds for the server's lifespan (the WAL checkpoint,
the search index's batches): one task, a failing round logged and tried again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class Periodic:
    """Runs `work` now and then every `interval` seconds, in a task of the running loop,
    from `start()` until `stop()`. A round that raises is logged (as `name`) and the next
    one tries again; `stop()` lets a round under way finish."""

    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[Any]]) -> None:
        self.name = name
        self.interval = interval
        self._work = work
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the rounds (on the running event loop)."""
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """End the rounds, after the one under way (if any) finishes."""
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._work()
            except Exception:  # a busy, full or locked database: the next round tries again
                log.warning("%s failed; retrying in %.1f s", self.name, self.interval,
                            exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)
