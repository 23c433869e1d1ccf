"""Snoozed conversations come back by themselves when their time is up."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select, text

from inbox import pipeline
from inbox.models import Conversation
from inbox.runtime import Runtime
from inbox.types import utcnow

log = logging.getLogger(__name__)

# How often to look (a snooze is set in minutes or hours: a minute late is fine).
INTERVAL_SECONDS = 30.0


async def wake_due(rt: Runtime, *, limit: int = 200) -> int:
    """Reopen every snoozed conversation whose `snoozed_until` has passed; returns how many.

    Each goes through `pipeline.set_status`, so agents see a `conversation.updated` event
    and a note saying why; a conversation changed meanwhile is left as it is.
    """
    async with rt.sessions() as session:
        result = await session.exec(  # type: ignore[call-overload]
            select(Conversation.id)
            .where(Conversation.status == "snoozed",
                   Conversation.snoozed_until <= utcnow())  # type: ignore[operator]
            .limit(limit)
        )
        due = [cid for cid in result.scalars().all()]
    woken = 0
    for cid in due:
        async with rt.sessions() as session:
            conv = await session.get(Conversation, cid)
            still_due = conv is not None and conv.status == "snoozed"
        if still_due:
            await pipeline.set_status(rt, conversation_id=cid, status="open", by="Snooze")
            woken += 1
    return woken


# The PostgreSQL advisory lock that lets one worker at a time run a pass (fixed).
SNOOZE_LOCK = 727_003


async def _wake_due_once_across_workers(rt: Runtime) -> int:
    """`wake_due`, run by at most one worker at a time (several share PostgreSQL)."""
    if rt.settings.is_sqlite:
        return await wake_due(rt)
    async with rt.engine.connect() as conn:
        got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SNOOZE_LOCK})).scalar()
        if not got:
            return 0
        try:
            return await wake_due(rt)
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SNOOZE_LOCK})


async def run(rt: Runtime, stop: asyncio.Event, *, interval: float = INTERVAL_SECONDS) -> None:
    """Wake due conversations every `interval` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            await _wake_due_once_across_workers(rt)
        except Exception:  # the store may be briefly away; try again next round
            log.exception("waking snoozed conversations failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
