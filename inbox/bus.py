"""The cross-process seam of the hub.

`LocalBus` delivers straight to this process's hub (one worker, no Redis). A Redis
pub/sub bus implements the same two methods so several workers see every event.
"""

from __future__ import annotations

from typing import Protocol

from inbox.events import EventOut
from inbox.hub import Hub


class Bus(Protocol):
    """Publishes committed events to every process's hub."""

    async def start(self) -> None: ...

    def publish(self, event: EventOut) -> None: ...

    async def stop(self) -> None: ...


class LocalBus:
    """The in-process bus: publishing is delivering to the local hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def start(self) -> None:
        """Nothing to connect."""

    def publish(self, event: EventOut) -> None:
        """Deliver `event` to this process's subscribers, without waiting."""
        self.hub.deliver(event)

    async def stop(self) -> None:
        """Nothing to close."""
