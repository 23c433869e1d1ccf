"""The FAQ bot's answer (issue 7): one transaction of prebuilt statements.

The guarded "still the bot's" UPDATE ... RETURNING, the message with its bot meta, its
outbox row, the entry's answer count and the event commit together (`inbox.replies.
bot_answer`, run by `inbox.sqlrun`); these tests pin its statements and what it stores,
through the real ingest and responder.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from faq.service import service_for
from inbox import pipeline, replies
from inbox.agents import create_agent
from inbox.errors import PolicyRefused
from inbox.models import OutboxRow
from inbox.runtime import Runtime
from inbox.types import FLAG_OPT_OUT
# `frt`: a runtime with the FAQ responder wired and the shop FAQ loaded (a fixture).
from tests.faq.test_responder import frt  # noqa: F401
from tests.faq.test_responder import conversation, entry, say, thread, unanswered
from tests.inbox.test_ingest_round_trips import (
    _events,
    _lock,
    _verb_and_table,
    commits,
    first_message,
    statements,
)
from tests.inbox.test_pipeline import count, rows


async def test_first_message_the_bot_answers_is_answered_in_one_transaction(frt: Runtime) -> None:
    """After ingest's six statements and commit: UPDATE conversation (guarded), INSERT
    message, INSERT outbox, UPDATE faq_entry, INSERT event, and one commit."""
    result, seen, done = await first_message(
        frt, "How long does shipping take?", sender="+15550108001",
        warm="How long does shipping take?", warm_sender="+15550108000")
    rest = [s for s in seen if "FROM faq_entry" not in s and "advisory" not in s]
    assert [_verb_and_table(s) for s in rest[6:]] == [
        ("UPDATE", "conversation"), ("INSERT", "message"), ("INSERT", "outbox"),
        ("UPDATE", "faq_entry"), ("INSERT", "event")], rest
    assert len([s for s in seen if "advisory" in s]) == 2 * _lock(frt)
    assert len(done) == 2  # ingest's and the answer's

    cid = result.conversation_id
    shipping = await entry(frt, "shipping-time")
    answer = [m for m in await thread(frt, cid) if m.author_kind == "bot"]
    assert len(answer) == 1
    message = answer[0]
    assert message.text == shipping.answer and message.delivery_status == "pending"
    assert message.meta["faq_entry_id"] == shipping.id
    assert message.meta["faq_question"] == "How long does shipping take?"
    assert message.meta["faq_reply_to"] == result.message_id
    assert 0 < message.meta["confidence"] <= 1
    assert shipping.auto_answers == 2 and shipping.last_used_at is not None
    conv = await conversation(frt, cid)
    assert (conv.handled_by, conv.status, conv.bot_answers) == ("bot", "open", 1)
    assert conv.last_activity_at == message.created_at
    outbox = [r for r in await rows(frt, OutboxRow) if r.message_id == message.id]
    assert [(r.state, r.attempts) for r in outbox] == [("pending", 0)]

    events = await _events(frt, cid)
    assert [e.type for e in events] == ["conversation.created", "message.created",
                                        "message.created"]
    said = events[2].payload
    assert "previous" not in said  # an answer moves the conversation between no views
    assert said["message"]["id"] == message.id and said["message"]["author"] == "bot"
    assert said["message"]["meta"]["faq_entry_id"] == shipping.id
    assert said["conversation"]["last_message"]["id"] == message.id
    assert datetime.fromisoformat(said["message"]["created_at"]) == message.created_at


async def test_answer_to_a_conversation_a_person_took_writes_nothing(frt: Runtime) -> None:
    cid = await say(frt, "How long does shipping take?", sender="v_taken")
    agent, _token = await create_agent(frt, email="kim@shop.example", name="Kim", role="agent")
    await pipeline.take_over(frt, conversation_id=cid, agent_id=agent.id or 0)
    before = (await conversation(frt, cid), len(await thread(frt, cid)),
              await count(frt, OutboxRow))
    with statements(frt) as seen, commits(frt) as done:
        sent = await replies.bot_answer(frt, conversation_id=cid, text="Two days.")
    assert sent is None
    assert [_verb_and_table(s) for s in seen] == [("UPDATE", "conversation")]
    assert len(done) == 1  # the guarded UPDATE changed no row
    after = await conversation(frt, cid)
    assert (after.bot_answers, after.last_activity_at) == (before[0].bot_answers,
                                                           before[0].last_activity_at)
    assert len(await thread(frt, cid)) == before[1]
    assert await count(frt, OutboxRow) == before[2]
    assert await replies.bot_answer(frt, conversation_id=10**9, text="Two days.") is None


async def test_answer_the_channel_refuses_is_handed_over_with_nothing_of_it_stored(
    frt: Runtime,
) -> None:
    # An SMS customer who opted out asks an FAQ question: the answer may not go to them,
    # so nothing of it stays (not the message, the outbox row or either count) and a
    # person sees the question.
    cid = await say(frt, "STOP", channel="sms", sender="+15550108010",
                    flags=frozenset({FLAG_OPT_OUT}))
    with pytest.raises(PolicyRefused):
        await replies.bot_answer(frt, conversation_id=cid, text="Two days.")
    assert (await conversation(frt, cid)).bot_answers == 0
    assert await say(frt, "How long does shipping take?", channel="sms",
                     sender="+15550108010") == cid
    conv = await conversation(frt, cid)
    assert (conv.handled_by, conv.bot_answers) == ("human", 0)
    assert not [m for m in await thread(frt, cid) if m.author_kind == "bot"]
    assert await count(frt, OutboxRow) == 0
    assert (await entry(frt, "shipping-time")).auto_answers == 0
    assert ("How long does shipping take?", "send_refused") in await unanswered(frt)


async def test_bot_hands_over_once_it_answered_the_most_it_may(frt: Runtime) -> None:
    limit = service_for(frt).policy.max_bot_answers
    for _ in range(limit):
        cid = await say(frt, "How long does shipping take?", sender="v_limit")
    assert (await conversation(frt, cid)).bot_answers == limit
    answered = len([m for m in await thread(frt, cid) if m.author_kind == "bot"])
    assert answered == limit
    await say(frt, "How long does shipping take?", sender="v_limit")
    conv = await conversation(frt, cid)
    assert (conv.handled_by, conv.bot_answers) == ("human", limit)
    assert len([m for m in await thread(frt, cid) if m.author_kind == "bot"]) == answered
    assert ("How long does shipping take?", "bot_answer_limit") in await unanswered(frt)
