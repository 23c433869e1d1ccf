"""Ingest's round trips (issue 7): few statements per message, same results.

Ingest reads identity, contact and the thread's newest conversation in one SELECT and
looks up the provider id only when the insert was refused; these tests pin the
statement counts and the behaviour that the shortcuts must keep.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from inbox import pipeline
from inbox.events import EventOut
from inbox.models import Conversation
from inbox.runtime import Runtime
from inbox.types import FLAG_OPT_OUT
from tests.inbox.test_pipeline import conversation, count, sms


@contextmanager
def statements(rt: Runtime) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(rt.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", note)


def _lock(rt: Runtime) -> int:
    # PostgreSQL takes the event lock (store.add_event) once per event written.
    return 1 if rt.engine.dialect.name == "postgresql" else 0


async def test_follow_up_sms_takes_one_read_and_three_writes(rt: Runtime) -> None:
    await pipeline.ingest(rt, sms("first"))
    with statements(rt) as seen:
        result = await pipeline.ingest(rt, sms("second"))
    assert not result.duplicate
    assert len(seen) == 4 + _lock(rt), seen  # SELECT; INSERT message, UPDATE conv, INSERT event
    assert seen[0].lstrip().upper().startswith("SELECT")


async def test_first_sms_of_a_new_number_inserts_its_conversation_once(rt: Runtime) -> None:
    with statements(rt) as seen:
        result = await pipeline.ingest(rt, sms("hello", sender="+15550107777"))
    conv = await conversation(rt, result.conversation_id)
    assert conv.unread_count == 1 and conv.last_customer_at is not None
    assert not [s for s in seen if s.lstrip().upper().startswith("UPDATE")], seen


async def test_retried_webhook_leaves_the_conversation_as_it_was(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("one", pid="SMretry1"))
    await pipeline.ingest(rt, sms("two", pid="SMretry2"))
    before = await conversation(rt, first.conversation_id)
    again = await pipeline.ingest(rt, sms("one", pid="SMretry1"))
    after = await conversation(rt, first.conversation_id)
    assert again.duplicate and again.message_id == first.message_id
    assert again.conversation_id == first.conversation_id and again.contact_id == first.contact_id
    assert (after.unread_count, after.last_activity_at) == (before.unread_count,
                                                            before.last_activity_at) == (
        2, before.last_activity_at)


async def test_retried_stop_emits_no_second_contact_event(rt: Runtime) -> None:
    stop = sms("STOP", pid="SMstop", flags=frozenset({FLAG_OPT_OUT}))
    first = await pipeline.ingest(rt, stop)
    again = await pipeline.ingest(rt, stop)
    assert [e.type for e in first.events] == ["contact.updated", "conversation.created",
                                              "message.created"]
    assert again.duplicate and again.events == []
    assert await count(rt, Conversation) == 1


class _Picky:
    """A responder that wants only conversation.created events."""

    name = "picky"

    def __init__(self) -> None:
        self.handled: list[str] = []

    def wants(self, event: EventOut) -> bool:
        return event.type == "conversation.created"

    async def handle(self, event: EventOut, runtime: Runtime) -> None:
        self.handled.append(event.type)


class _Broken(_Picky):
    """A responder whose screen raises: it is asked anyway (and logs the error)."""

    name = "broken"

    def wants(self, event: EventOut) -> bool:
        raise RuntimeError("screen failed")


async def test_responder_is_not_run_on_events_it_does_not_want(rt: Runtime) -> None:
    picky, broken = _Picky(), _Broken()
    rt.responders = [picky, broken]
    await pipeline.ingest(rt, sms("hello", sender="+15550108888"))
    await rt.drain()
    assert picky.handled == ["conversation.created"]
    assert broken.handled == ["conversation.created", "message.created"]
