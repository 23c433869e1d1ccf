"""The resources of a running inbox, built once in the app's lifespan.

Handlers, responders and background workers reach everything through a `Runtime`: no
module globals. `web/app.py` builds it and wires the concrete connectors and responders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox.bus import Bus
from inbox.errors import NotFound
from inbox.events import EventOut
from inbox.hub import Hub
from inbox.ports import Connector, OrderSource, Responder
from inbox.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from inbox.outbox import Dispatcher

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a request or a worker needs, shared by the whole process."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hub: Hub
    bus: Bus
    connectors: dict[str, Connector] = field(default_factory=dict)
    responders: list[Responder] = field(default_factory=list)
    order_sources: list[OrderSource] = field(default_factory=list)
    dispatcher: Dispatcher | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def connector(self, provider: str) -> Connector:
        """The connector registered for `provider`; `NotFound` if it is not configured."""
        try:
            return self.connectors[provider]
        except KeyError:
            raise NotFound(f"channel provider {provider!r} is not configured") from None

    def after_commit(self, events: Sequence[EventOut], *, outbox: bool = False) -> None:
        """Publish committed events, run responders on them, wake the dispatcher.

        Call only after the transaction that wrote them committed (zulip's
        send_event_on_commit): an event for a rolled-back change must never go out.
        """
        for event in events:
            self.bus.publish(event)
        if self.responders:
            for event in events:
                for responder in self.responders:
                    if self._wants(responder, event):
                        self.spawn(self._respond(responder, event))
        if outbox and self.dispatcher is not None:
            self.dispatcher.wake()

    @staticmethod
    def _wants(responder: Responder, event: EventOut) -> bool:
        # A responder may say cheaply, without I/O, that an event is none of its
        # business (an optional `wants(event) -> bool`): no task is spawned for it then.
        wants = getattr(responder, "wants", None)
        if wants is None:
            return True
        try:
            return bool(wants(event))
        except Exception:
            log.exception("responder %s could not screen event %s", responder.name, event.seq)
            return True

    async def _respond(self, responder: Responder, event: EventOut) -> None:
        try:
            await responder.handle(event, self)
        except Exception:
            log.exception("responder %s failed on event %s", responder.name, event.seq)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` in the background, keeping a reference until it finishes."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until background work spawned so far (and what it spawns) is done."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def close(self) -> None:
        """Cancel background work and release resources."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.bus.stop()
        for connector in self.connectors.values():
            closer = getattr(connector, "aclose", None)
            if closer is not None:
                try:
                    await closer()
                except Exception:  # pragma: no cover - best effort at shutdown
                    log.exception("closing connector %s", connector.provider)
        await self.engine.dispose()
