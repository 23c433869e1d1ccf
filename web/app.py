"""The composition root: builds the runtime in the lifespan and wires every package.

`create_app()` builds the app; `serve_app()` is the uvicorn factory `inbox serve` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import connectors
from inbox import search_index, snooze
from inbox.bus import Bus, LocalBus
from inbox.checkpoint import FALLBACK_PAGES, Checkpointer, database_path
from inbox.db import make_engine, make_sessionmaker
from inbox.hub import Hub
from inbox.orders import StoredOrders
from inbox.outbox import Dispatcher
from inbox.ports import Responder
from inbox.redis_bus import RedisBus
from inbox.runtime import Runtime
from inbox.search_index import SearchIndexer
from inbox.settings import Settings
from web import migrate
from web.errors import HANDLERS
from web.mail_services import start_mail_services
from web.middleware import SecurityHeaders, SessionsExcept
from web.routes import (
    api,
    canned,
    compose,
    demo_sink,
    faq,
    media,
    merge,
    orders,
    pages,
    realtime,
    webhooks,
)
from web.static_paths import STATIC_DIR
from web.webchat_fallback import email_fallback

log = logging.getLogger(__name__)

ResponderFactory = Callable[[Settings], list[Responder]]


def _default_responders(settings: Settings) -> list[Responder]:
    try:
        from faq.wiring import build_responders  # type: ignore[import-not-found]
    except ImportError:
        return []
    responders: list[Responder] = build_responders(settings)
    return responders


async def build_runtime(settings: Settings, *, migrate_db: bool | None = None,
                        responders: ResponderFactory | None = None,
                        checkpointed: bool = False) -> Runtime:
    """Every resource the app needs, connected and (on SQLite) migrated. `checkpointed`:
    the caller checkpoints a SQLite file off the commit path (the app's lifespan, with a
    `Checkpointer`), so commits checkpoint only if it falls far behind."""
    if migrate_db if migrate_db is not None else settings.is_sqlite:
        await asyncio.to_thread(migrate.upgrade, settings.database_url)
    engine = make_engine(settings.database_url, wal_autocheckpoint=(
        FALLBACK_PAGES if checkpointed and database_path(settings.database_url) else None))
    hub = Hub(queue_size=settings.hub_queue_size)
    bus: Bus = RedisBus(hub, settings.redis_url) if settings.redis_url else LocalBus(hub)
    rt = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), hub=hub,
                 bus=bus)
    rt.connectors = connectors.build_all(settings)
    webchat: Any = rt.connectors.get("webchat")
    if webchat is not None:
        webchat.offline_fallback = email_fallback(rt)
    rt.order_sources.append(StoredOrders(rt.sessions))
    rt.responders = (responders or _default_responders)(settings)
    rt.dispatcher = Dispatcher(rt)
    await rt.bus.start()
    return rt


async def healthz(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        async with rt.engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=3)
    except Exception as exc:
        return JSONResponse({"ok": False, "database": f"unreachable: {type(exc).__name__}"},
                            status_code=503)
    return JSONResponse({"ok": True, "subscribers": rt.hub.subscriber_count})


def create_app(settings: Settings | None = None, *, migrate_db: bool | None = None,
               responders: ResponderFactory | None = None, dispatch: bool = True,
               freeze_heap: bool = False) -> Starlette:
    """The ASGI app. Tests pass `settings`; `inbox serve` reads the environment (through
    `serve_app`). `freeze_heap`: once started, leave what startup built out of every
    later garbage collection (`freeze_startup_heap`), for a process that serves only
    this app."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        rt = await build_runtime(settings, migrate_db=migrate_db, responders=responders,
                                 checkpointed=True)
        app.state.runtime = rt
        if dispatch and rt.dispatcher is not None:
            rt.dispatcher.start()
        extra_tasks = await _start_extras(rt)
        if freeze_heap:
            freeze_startup_heap()
        try:
            yield {}
        finally:
            for stop in extra_tasks:
                with contextlib.suppress(Exception):
                    await stop()
            if rt.dispatcher is not None:
                await rt.dispatcher.stop()
            await rt.close()

    demo_routes = demo_sink.routes if os.environ.get("INBOX_DEMO_PROVIDERS") == "1" else []
    routes = [
        *demo_routes,
        # Starlette tries routes in order: provider webhooks, the busiest path, first
        # (behind ~45 API routes each webhook paid ~0.1 ms to match).
        *webhooks.routes,
        Route("/healthz", healthz, methods=["GET"]),
        *api.routes, *media.routes, *compose.routes, *orders.routes, *faq.routes,
        *canned.routes, *merge.routes,
        *realtime.routes,
        *pages.routes,
        Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionsExcept, skip=("/webhooks/",), secret_key=settings.secret_key,
                   session_cookie="inbox_session", max_age=12 * 3600, same_site="lax",
                   https_only=settings.public_url.startswith("https://")),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=HANDLERS,
                    lifespan=lifespan)
    app.state.settings = settings
    return app


def serve_app() -> Starlette:
    """The app `inbox serve` runs (its uvicorn factory): `create_app()` with the settings
    from the environment, freezing its startup heap."""
    return create_app(freeze_heap=True)


def freeze_startup_heap() -> None:
    """Collect garbage once, then leave every object alive now out of later collections.

    A full collection walks every object the collector tracks: ~148k in a started
    worker, nearly all modules, functions, classes and tables that live as long as the
    process (~160k after 15,000 messages). Under bench load a full collection took
    60-95 ms, up to 190 ms when other processes shared the cores, while the event loop
    and the SQLite thread stood still and every request waited (bench/scale_bench.py
    scenario B). Frozen (`gc.freeze`), they are no longer walked: ~6 ms. An object frozen here
    that later becomes cyclic garbage is never freed, so this runs once, after startup.

    Then the youngest generation is collected after 10,000 net new container objects,
    not 700: a request allocates and frees hundreds of them, so at 700 a collection
    ran every ~24 webhooks at ~180 us each while nearly everything it walked was about
    to be freed anyway, ~8 us of server CPU per message (scenario A, 1 agent: ~820 young
    collections per 19,000 messages; at 10,000: one, 1.6 ms). Cyclic garbage is still
    collected, after at most ~10,000 new objects.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)


# Net new tracked objects between young collections once started (`freeze_startup_heap`).
YOUNG_GC_THRESHOLD = 10_000


async def _start_extras(rt: Runtime) -> list[Callable[[], Any]]:
    """Background services: WAL checkpoints (SQLite file), the search index's batches
    (SQLite), snooze wake-ups, and the SMTP/IMAP ones when configured."""
    stops: list[Callable[[], Any]] = list(await start_mail_services(rt))
    path = database_path(rt.settings.database_url)
    if path is not None:
        checkpointer = await Checkpointer(path).open()
        checkpointer.start()
        stops.append(checkpointer.stop)
    if search_index.deferred(rt.engine):
        indexer = SearchIndexer(rt.engine)
        indexer.start()
        stops.append(indexer.stop)
    stop_event = asyncio.Event()
    task = asyncio.get_running_loop().create_task(snooze.run(rt, stop_event))

    async def stop_snooze() -> None:
        stop_event.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stops.append(stop_snooze)
    return stops
