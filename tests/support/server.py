"""A real uvicorn server running the real app on a free port, in the test's loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from inbox.runtime import Runtime
from inbox.settings import Settings
from web.app import ResponderFactory, create_app


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running server: its URLs, its app and runtime, an HTTP client."""

    base_url: str
    app: Starlette
    client: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        """The ws:// base URL."""
        return self.base_url.replace("http://", "ws://")

    @property
    def rt(self) -> Runtime:
        """The app's runtime (store, hub, connectors)."""
        rt: Runtime = self.app.state.runtime
        return rt

    def auth(self, token: str) -> dict[str, str]:
        """Headers for a Bearer token."""
        return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def live_server(settings: Settings, *, responders: ResponderFactory | None = None,
                      dispatch: bool = True, port: int | None = None,
                      **config: Any) -> AsyncIterator[LiveServer]:
    """Start the app under uvicorn on 127.0.0.1 and stop it on exit."""
    port = port or free_port()
    app = create_app(settings, migrate_db=False, responders=responders or (lambda s: []),
                     dispatch=dispatch)
    cfg = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                         ws_max_size=65_536, **config)
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    else:  # pragma: no cover
        raise RuntimeError("server did not start")
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        try:
            yield LiveServer(base, app, client)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, timeout=15)
