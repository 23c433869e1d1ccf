"""The hub's cross-process seam on Redis pub/sub, for several workers or hosts.

Every worker publishes committed events to one Redis channel and delivers what it
receives to its own local subscribers, its own events included (one path for all).
`publish` never waits: events go through a bounded in-memory queue to a writer task.
When Redis is unreachable, the worker keeps serving; once it reconnects it tells every
local subscriber to resync, and agents replay what they missed from the event table
(`since`), so nothing is lost, only delayed. The hub reloads its routing states from the
database then (`Hub.resync_all`), so events after the reconnect are still routed by view.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis

from inbox.events import EventOut
from inbox.hub import Hub

log = logging.getLogger(__name__)

CHANNEL = "inbox:events"
# Events waiting for Redis; past this the oldest are dropped and subscribers resync.
QUEUE_SIZE = 10_000


def encode(event: EventOut) -> str:
    """The wire form of an event on the bus."""
    return json.dumps({"seq": event.seq, "type": event.type,
                       "conversation_id": event.conversation_id, "payload": event.payload},
                      separators=(",", ":"))


def decode(data: str | bytes) -> EventOut:
    """An event from its wire form."""
    raw = json.loads(data)
    return EventOut(seq=raw["seq"], type=raw["type"], conversation_id=raw["conversation_id"],
                    payload=raw["payload"])


def channel_for(url: str) -> str:
    """The bus channel of the deployment at `url`: one per Redis database number, since
    pub/sub channels are shared by every database of a server (two deployments told
    apart by `/N` would otherwise receive each other's events)."""
    parts = urlsplit(url)
    db = parse_qs(parts.query).get("db", [""])[0]
    if not db and parts.scheme != "unix":  # redis://host:port/N (unix://PATH?db=N)
        db = parts.path.strip("/")
    return f"{CHANNEL}:{db or '0'}"


class RedisBus:
    """Publishes to and listens on one Redis channel; reconnects with backoff.

    Its connections are named `inbox-bus:<channel>` (CLIENT LIST shows which are ours).
    """

    def __init__(self, hub: Hub, url: str, *, channel: str | None = None) -> None:
        self.hub = hub
        self.url = url
        self.channel = channel or channel_for(url)
        self._out: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def start(self) -> None:
        """Connect in the background; returns at once (the app serves without Redis)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._write())]

    def publish(self, event: EventOut) -> None:
        """Queue `event` for every worker; never waits."""
        try:
            self._out.put_nowait(encode(event))
        except asyncio.QueueFull:
            # Redis has been away long: drop the oldest and make local clients replay.
            self._out.get_nowait()
            self._out.put_nowait(encode(event))
            self.hub.resync_all()

    async def stop(self) -> None:
        """Stop listening and writing."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self) -> Any:
        return aioredis.from_url(self.url, socket_connect_timeout=2, socket_timeout=None,
                                 health_check_interval=10, client_name=f"inbox-bus:{self.channel}")

    async def _listen(self) -> None:
        delay = 0.1
        first = True
        while not self._stopping:
            client = await self._client()
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(self.channel)
                self.connected.set()
                if not first:
                    # We may have missed events while away: every local client replays.
                    self.reconnects += 1
                    self.hub.resync_all()
                first, delay = False, 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        try:
                            self.hub.deliver(decode(message["data"]))
                        except (ValueError, KeyError):
                            log.warning("ignoring a malformed event on %s", self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning("redis bus lost (%s); reconnecting in %.1fs", exc, delay)
            finally:
                try:
                    await client.aclose()
                except Exception:
                    pass
            await asyncio.sleep(delay + random.uniform(0, delay / 2))
            delay = min(delay * 2, 5.0)

    async def _write(self) -> None:
        client = None
        while not self._stopping:
            data = await self._out.get()
            while not self._stopping:
                try:
                    if client is None:
                        client = await self._client()
                    await client.publish(self.channel, data)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("redis publish failed (%s); retrying", exc)
                    if client is not None:
                        try:
                            await client.aclose()
                        except Exception:
                            pass
                    client = None
                    await asyncio.sleep(0.5)
