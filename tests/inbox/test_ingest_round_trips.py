"""Ingest's round trips (issue 7): few statements per message, same results.

Ingest reads identity, contact and the thread's newest conversation in one SELECT and
looks up the provider id only when the insert was refused; the FAQ responder's
hand-over of a customer's first message is one transaction of prebuilt statements
(`inbox.sqlrun`) that changes the conversation with one UPDATE ... RETURNING and stores
the note, the unanswered question and any acknowledgement (with its outbox row) with
it. These tests pin the statement counts and the behaviour that the shortcuts must keep.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from faq import store as faq_store
from inbox import pipeline
from inbox import store as inbox_store
from inbox.bus import LocalBus
from inbox.db import make_sessionmaker
from inbox.errors import NotFound
from inbox.events import EventOut
from inbox.hub import Hub
from inbox.models import Conversation, OutboxRow
from inbox.runtime import Runtime
from inbox.sqlrun import Plan
from inbox.types import FLAG_OPT_OUT, utcnow
from tests.conftest import make_settings

# `frt`: a runtime with the FAQ responder wired and the shop FAQ loaded (a fixture).
from tests.faq.test_responder import frt  # noqa: F401
from tests.inbox.test_pipeline import conversation, count, rows, sms


# PostgreSQL's commit bookkeeping of an event-writing transaction (`inbox.sqlrun`'s
# DEFER_FLUSH: synchronous_commit off, the durability barrier after the commit, and the
# one-time privilege check), tested in test_sqlrun_pg; not counted here.
_DURABILITY = ("synchronous_commit", "pg_logical_emit_message", "has_function_privilege")


@contextmanager
def statements(rt: Runtime) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block (PostgreSQL's commit
    bookkeeping left out)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not any(word in statement for word in _DURABILITY):
            seen.append(statement)

    event.listen(rt.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(rt.engine.sync_engine, "before_cursor_execute", note)


@contextmanager
def commits(rt: Runtime) -> Iterator[list[int]]:
    """One item per transaction committed inside the block."""
    done: list[int] = []

    def note(_conn: Any) -> None:
        done.append(1)

    event.listen(rt.engine.sync_engine, "commit", note)
    try:
        yield done
    finally:
        event.remove(rt.engine.sync_engine, "commit", note)


async def first_message(
    rt: Runtime, text: str, *, sender: str, warm: str, warm_sender: str,
) -> tuple[pipeline.IngestResult, list[str], list[int]]:
    """`text` ingested as `sender`'s first message, its responders drained: the result,
    the statements and the commits that took. Ingests `warm` from `warm_sender` first
    (the matcher's index built on first use, the FAQ fingerprint checked)."""
    await pipeline.ingest(rt, sms(warm, sender=warm_sender))
    await rt.drain()
    with statements(rt) as seen, commits(rt) as done:
        result = await pipeline.ingest(rt, sms(text, sender=sender))
        await rt.drain()
    return result, seen, done


def _lock(rt: Runtime) -> int:
    # PostgreSQL takes the event lock (store.add_event) once per transaction that writes
    # events.
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


async def test_retried_webhook_makes_the_database_refuse_nothing(rt: Runtime) -> None:
    # PostgreSQL logs every refused statement (a unique violation) as an ERROR: the
    # insert says ON CONFLICT DO NOTHING instead, and the retry is still a duplicate.
    first = await pipeline.ingest(rt, sms("one", pid="SMquiet1", sender="+15550107010"))
    errors: list[Any] = []

    def refused(context: Any) -> None:
        errors.append(context.original_exception)

    event.listen(rt.engine.sync_engine, "handle_error", refused)
    try:
        with statements(rt) as seen:
            again = await pipeline.ingest(rt, sms("one", pid="SMquiet1", sender="+15550107010"))
    finally:
        event.remove(rt.engine.sync_engine, "handle_error", refused)
    assert errors == []
    assert again.duplicate and again.message_id == first.message_id and again.events == []
    assert any("ON CONFLICT" in s.upper() for s in seen), seen
    assert await count(rt, Conversation) == 1


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


# ---------------------------------------------------------------------------- first message


async def _events(rt: Runtime, conversation_id: int) -> list[EventOut]:
    async with rt.sessions() as session:
        found = await inbox_store.events_after(session, seq=0)
    return [e for e in found if e.conversation_id == conversation_id]


async def test_first_message_the_bot_cannot_answer_is_handed_over_in_two_commits(
    frt: Runtime,
) -> None:
    """New contact, identity, conversation and message, then the hand-over with its
    unanswered question: 10 statements besides the matched entry's read, two commits."""
    question = "Can I paint my fence purple with your brushes?"
    result, seen, done = await first_message(
        frt, question, sender="+15550107001",
        warm="Can I paint my fence purple?", warm_sender="+15550107000")
    # The service reads the matched entry when the matcher names one (its ranking, not
    # this path, decides whether it does).
    entry_reads = [s for s in seen if "FROM faq_entry" in s]
    rest = [s for s in seen if "FROM faq_entry" not in s]
    assert len(entry_reads) <= 1
    # ingest: SELECT identity; INSERT contact, identity, conversation, message, and its
    # 2 events in one INSERT; the responder reads nothing back (the message opened the
    # conversation); hand-over: UPDATE conversation RETURNING, INSERT unanswered, INSERT
    # note, and its 2 events in one INSERT.
    assert len(rest) == 10 + 2 * _lock(frt), rest  # two transactions write events
    assert len(done) == 2
    assert sum(s.lstrip().upper().startswith("UPDATE") for s in rest) == 1
    assert sum(s.lstrip().upper().startswith("SELECT CONVERSATION") for s in rest) == 0
    # The hand-over's own statements, prebuilt (inbox.ingest_sql), in this order.
    hand_over = [s for s in rest[6 + _lock(frt):] if "advisory" not in s]
    assert [_verb_and_table(s) for s in hand_over] == [
        ("UPDATE", "conversation"), ("INSERT", "faq_unanswered"), ("INSERT", "message"),
        ("INSERT", "event")], hand_over

    cid = result.conversation_id
    conv = await conversation(frt, cid)
    assert (conv.handled_by, conv.status, conv.unread_count) == ("human", "open", 1)
    async with frt.sessions() as session:
        open_questions = await faq_store.open_unanswered(session)
    assert [(q.text, q.reason, q.message_id, q.conversation_id) for q in open_questions][:1] == [
        (question, "not_confident", result.message_id, cid)]
    events = await _events(frt, cid)
    assert [e.type for e in events] == ["conversation.created", "message.created",
                                        "message.created", "conversation.updated"]
    note, updated = events[2].payload, events[3].payload
    assert note["message"]["author"] == "system" and note["message"]["private"] is True
    assert note["message"]["text"] == ("Handed to a person: "
                                       "no FAQ entry fits this question well enough")
    for payload in (note, updated):
        assert payload["previous"] == {"status": "open", "assignee_id": None,
                                       "channel": "sms", "handled_by": "bot"}
        assert payload["conversation"]["handled_by"] == "human"
        assert payload["conversation"]["unread_count"] == 1
        assert payload["conversation"]["contact_name"] is None


def _verb_and_table(statement: str) -> tuple[str, str]:
    words = statement.split()
    verb = words[0].upper()
    table = words[2] if verb == "INSERT" else words[1]
    return verb, table.strip('"')


async def test_request_for_a_person_is_handed_over_with_its_acknowledgement_in_one_transaction(
    frt: Runtime,
) -> None:
    """The hand-over, the unanswered question and the acknowledgement with its outbox row
    commit together: 7 statements and one commit after ingest's (17 and two before)."""
    result, seen, done = await first_message(
        frt, "I want to talk to a human", sender="+15550107041",
        warm="Can I paint my fence purple?", warm_sender="+15550107040")
    rest = [s for s in seen if "FROM faq_entry" not in s and "advisory" not in s]
    assert [_verb_and_table(s) for s in rest[6:]] == [
        ("UPDATE", "conversation"), ("INSERT", "faq_unanswered"), ("INSERT", "message"),
        ("UPDATE", "conversation"), ("INSERT", "message"), ("INSERT", "outbox"),
        ("INSERT", "event")], rest
    assert len(done) == 2

    cid = result.conversation_id
    conv = await conversation(frt, cid)
    assert (conv.handled_by, conv.status, conv.bot_answers) == ("human", "open", 1)
    events = await _events(frt, cid)
    assert [e.type for e in events] == ["conversation.created", "message.created",
                                        "message.created", "conversation.updated",
                                        "message.created"]
    note, updated, ack = (e.payload for e in events[2:])
    assert note["message"]["author"] == "system" and note["message"]["private"] is True
    assert updated["previous"]["handled_by"] == "bot" and "previous" not in ack
    assert ack["message"]["author"] == "bot" and ack["message"]["private"] is False
    assert ack["message"]["delivery_status"] == "pending"
    assert ack["message"]["meta"] == {"faq_handover": "wants_human"}
    assert ack["conversation"]["last_message"]["id"] == ack["message"]["id"]
    assert ack["conversation"]["handled_by"] == "human"
    assert conv.last_activity_at == datetime.fromisoformat(ack["message"]["created_at"])
    outbox = await rows(frt, OutboxRow)
    assert [(r.message_id, r.state, r.attempts) for r in outbox] == [
        (ack["message"]["id"], "pending", 0)]
    async with frt.sessions() as session:
        questions = await faq_store.open_unanswered(session)
    assert [(q.text, q.reason, q.message_id) for q in questions][:1] == [
        ("I want to talk to a human", "wants_human", result.message_id)]


async def test_acknowledgement_the_channel_refuses_leaves_the_hand_over_standing(
    frt: Runtime,
) -> None:
    # An SMS customer who opted out asks for a person: handed over and recorded, but no
    # message goes to them (and nothing waits in the outbox).
    await pipeline.ingest(frt, sms("STOP", sender="+15550107042", flags=frozenset({FLAG_OPT_OUT})))
    await frt.drain()
    later = await pipeline.ingest(frt, sms("I want to talk to a human", sender="+15550107042"))
    await frt.drain()
    conv = await conversation(frt, later.conversation_id)
    assert (conv.handled_by, conv.bot_answers) == ("human", 0)
    events = await _events(frt, later.conversation_id)
    assert [e.type for e in events][-2:] == ["message.created", "conversation.updated"]
    assert events[-2].payload["message"]["author"] == "system"
    assert await count(frt, OutboxRow) == 0
    assert await count(frt, faq_store.UnansweredQuestion) == 1


async def test_hand_over_without_the_callers_view_reads_the_conversation_first(
    rt: Runtime,
) -> None:
    first = await pipeline.ingest(rt, sms("hello", sender="+15550107043"))
    await pipeline.set_status(rt, conversation_id=first.conversation_id, status="pending")
    summary = await pipeline.hand_over(rt, conversation_id=first.conversation_id,
                                       reason="testing")
    assert (summary["status"], summary["handled_by"]) == ("pending", "human")
    events = await _events(rt, first.conversation_id)
    assert events[-1].payload["previous"] == {"status": "pending", "assignee_id": None,
                                              "channel": "sms", "handled_by": "bot"}
    with pytest.raises(NotFound):
        await pipeline.hand_over(rt, conversation_id=first.conversation_id + 1000,
                                 reason="testing")


async def test_agent_reply_that_takes_the_conversation_writes_both_events_in_one_insert(
    frt: Runtime,
) -> None:
    first = await pipeline.ingest(frt, sms("hi", sender="+15550107044"))  # small talk
    await frt.drain()
    with statements(frt) as seen:
        await pipeline.reply(frt, conversation_id=first.conversation_id, text="On it",
                             author_kind="agent")
    assert sum(s.lstrip().upper().startswith("INSERT INTO EVENT") for s in seen) == 1, seen
    events = await _events(frt, first.conversation_id)
    assert [e.type for e in events[-2:]] == ["message.created", "conversation.updated"]
    assert events[-1].seq == events[-2].seq + 1  # type: ignore[operator]
    for written in events[-2:]:
        assert written.payload["previous"]["handled_by"] == "bot"
        assert written.payload["conversation"]["handled_by"] == "human"


async def test_hand_over_of_a_resolved_conversation_reopens_it_in_one_update(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("hello", sender="+15550107002"))
    await pipeline.set_status(rt, conversation_id=first.conversation_id, status="resolved")
    known = await conversation(rt, first.conversation_id)
    with statements(rt) as seen:
        summary = await pipeline.hand_over(rt, conversation_id=first.conversation_id,
                                           reason="testing", known=known)
    assert not [s for s in seen if s.lstrip().upper().startswith("SELECT conversation")], seen
    assert (summary["status"], summary["handled_by"]) == ("open", "human")
    events = await _events(rt, first.conversation_id)
    assert events[-1].type == "conversation.updated"
    assert events[-1].payload["previous"]["status"] == "resolved"
    assert events[-1].payload["previous"]["handled_by"] == "bot"


async def test_hand_over_reads_the_conversation_again_when_it_changed_since_the_caller_read_it(
    rt: Runtime,
) -> None:
    first = await pipeline.ingest(rt, sms("hello", sender="+15550107003"))
    known = await conversation(rt, first.conversation_id)  # open, the bot's
    await pipeline.set_status(rt, conversation_id=first.conversation_id, status="pending")
    written: list[str] = []

    def also() -> Plan[None]:
        yield faq_store.unanswered_row(message_id=first.message_id,
                                       conversation_id=first.conversation_id,
                                       text="hello", reason="testing")
        written.append("unanswered")

    summary = await pipeline.hand_over(rt, conversation_id=first.conversation_id,
                                       reason="testing", known=known, also=also())
    assert (summary["status"], summary["handled_by"]) == ("pending", "human")
    assert written == ["unanswered"]
    assert await count(rt, faq_store.UnansweredQuestion) == 1
    events = await _events(rt, first.conversation_id)
    assert [e.type for e in events[-2:]] == ["message.created", "conversation.updated"]
    # "previous" is the state the hand-over changed, not the caller's older view.
    assert events[-1].payload["previous"]["status"] == "pending"


async def test_hand_over_and_the_callers_rows_commit_together_or_not_at_all(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("hello", sender="+15550107004"))
    known = await conversation(rt, first.conversation_id)

    def also() -> Plan[None]:
        yield faq_store.unanswered_row(message_id=first.message_id,
                                       conversation_id=first.conversation_id,
                                       text="hello", reason="testing")
        raise RuntimeError("the caller's write failed")

    with pytest.raises(RuntimeError):
        await pipeline.hand_over(rt, conversation_id=first.conversation_id, reason="testing",
                                 known=known, also=also())
    conv = await conversation(rt, first.conversation_id)
    assert conv.handled_by == "bot"
    assert await count(rt, faq_store.UnansweredQuestion) == 0
    assert [e.type for e in await _events(rt, first.conversation_id)] == [
        "conversation.created", "message.created"]


async def test_a_conversation_and_the_message_that_opens_it_share_their_time(rt: Runtime) -> None:
    # The FAQ responder reads nothing back for a message that opened its conversation,
    # and tells one by these two times (faq.responder._opened).
    first = await pipeline.ingest(rt, sms("hello", sender="+15550107005"))
    second = await pipeline.ingest(rt, sms("again", sender="+15550107005"))
    (opened,) = [e.payload for e in first.events if e.type == "message.created"]
    (later,) = [e.payload for e in second.events if e.type == "message.created"]
    assert opened["conversation"]["created_at"] == opened["message"]["created_at"]
    assert later["conversation"]["created_at"] != later["message"]["created_at"]


async def test_second_message_is_judged_on_the_conversation_as_stored(frt: Runtime) -> None:
    """A follow-up reads the conversation and our last answer back (its bot answers and
    what "that didn't help" refers to are not in the event)."""
    first = await pipeline.ingest(frt, sms("How long does shipping take?", sender="+15550107006"))
    await frt.drain()
    with statements(frt) as seen:
        await pipeline.ingest(frt, sms("no that didn't help", sender="+15550107006"))
        await frt.drain()
    assert sum(s.lstrip().upper().startswith("SELECT CONVERSATION") for s in seen) == 1
    conv = await conversation(frt, first.conversation_id)
    assert conv.handled_by == "human"
    async with frt.sessions() as session:
        reasons = [q.reason for q in await faq_store.open_unanswered(session)]
    assert reasons[:1] == ["negative_feedback"]


# ---------------------------------------------------------------------------- previous


async def test_follow_up_that_reopens_or_wakes_a_conversation_says_where_it_was(rt: Runtime) -> None:
    first = await pipeline.ingest(rt, sms("hello", sender="+15550107020"))
    cid = first.conversation_id
    plain = await pipeline.ingest(rt, sms("are you there?", sender="+15550107020"))
    (created,) = [e.payload for e in plain.events if e.type == "message.created"]
    assert "previous" not in created  # nothing moved: the view state is the same
    await pipeline.set_status(rt, conversation_id=cid, status="resolved")
    reopened = await pipeline.ingest(rt, sms("one more thing", sender="+15550107020"))
    (created,) = [e.payload for e in reopened.events if e.type == "message.created"]
    assert reopened.conversation_id == cid and created["conversation"]["status"] == "open"
    assert created["previous"] == {"status": "resolved", "assignee_id": None,
                                   "channel": "sms", "handled_by": "bot"}
    await pipeline.set_status(rt, conversation_id=cid, status="snoozed",
                              snoozed_until=utcnow() + timedelta(hours=1))
    woken = await pipeline.ingest(rt, sms("hello again", sender="+15550107020"))
    (created,) = [e.payload for e in woken.events if e.type == "message.created"]
    assert created["previous"]["status"] == "snoozed"
    assert (created["conversation"]["status"], created["conversation"]["snoozed_until"]) == (
        "open", None)
    conv = await conversation(rt, cid)
    # Resolving read everything: the two messages since are unread.
    assert (conv.status, conv.snoozed_until, conv.unread_count) == ("open", None, 2)


async def test_a_follow_up_counts_unread_in_the_database_not_from_its_read(rt: Runtime) -> None:
    # Two messages of one conversation stored one after the other each add one unread,
    # and the event shows the count as committed.
    first = await pipeline.ingest(rt, sms("one", sender="+15550107021"))
    second = await pipeline.ingest(rt, sms("two", sender="+15550107021"))
    (created,) = [e.payload for e in second.events if e.type == "message.created"]
    assert created["conversation"]["unread_count"] == 2
    assert created["conversation"]["last_message"]["id"] == second.message_id
    assert (await conversation(rt, first.conversation_id)).unread_count == 2


async def test_ingest_on_an_engine_without_the_one_hop_connection_runs_statement_by_statement(
    tmp_path: Any, sqlite_template: Any,
) -> None:
    # An engine made without `make_engine`'s one-hop SQLite connection (or an aiosqlite
    # release without the internals it needs) still ingests, through SQLAlchemy.
    path = tmp_path / "plain.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_async_engine(url)
    hub = Hub()
    rt = Runtime(settings=make_settings(url), engine=engine, sessions=make_sessionmaker(engine),
                 hub=hub, bus=LocalBus(hub))
    try:
        first = await pipeline.ingest(rt, sms("hello", sender="+15550107030"))
        again = await pipeline.ingest(rt, sms("again", sender="+15550107030"))
        assert again.conversation_id == first.conversation_id and not again.duplicate
        assert (await conversation(rt, first.conversation_id)).unread_count == 2
        # The hand-over's plan too (sqlrun.run falls back the same way).
        summary = await pipeline.hand_over(rt, conversation_id=first.conversation_id,
                                           reason="testing", known=await conversation(
                                               rt, first.conversation_id))
        assert summary["handled_by"] == "human"
    finally:
        await engine.dispose()


async def test_live_frames_are_the_frames_the_event_log_replays(rt: Runtime) -> None:
    # What agents received live is what a client resuming with ?since= reads from the
    # log, byte for byte (the live frame reuses the stored payload text on SQLite).
    first = await pipeline.ingest(rt, sms("안녕하세요 — où est ma commande?", sender="+15550107030"))
    second = await pipeline.ingest(rt, sms('"quoted" \\ back\nslash', sender="+15550107030"))
    live = [*first.events, *second.events]
    replayed = await _events(rt, first.conversation_id)
    assert [e.wire() for e in replayed] == [e.wire() for e in live]
    assert [json.loads(e.wire()) for e in live] == [e.to_json() for e in live]
