"""The FAQ auto-answer: a responder that answers customers from the FAQ, or hands over.

Runs on every committed `message.created` event of a customer message (after commit,
off the request path). The verdict comes from `faq.policy` (pure); this module only
gathers the facts (conversation, last thing we said, the customer's order) and acts
through the pipeline's steps (`inbox.replies.bot_answer`, `pipeline.hand_over`), so an
answer is an ordinary outbound message with an outbox row, and a hand-over an ordinary
state change with a private note for agents.

Messages of one conversation are handled one at a time (a per-conversation lock), so
two quick questions cannot both slip under the answer limit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from faq import store
from faq.policy import SETTLED_BY_EVENT, Decision, Situation, reason_text, screen
from faq.render import personalise, render, uses_order
from faq.service import FaqService
from faq.store import FaqEntry
from inbox import pipeline, replies
from inbox import store as inbox_store
from inbox.errors import InboxError
from inbox.events import EventOut
from inbox.models import Conversation, Message
from inbox.runtime import Runtime
from inbox.sqlrun import Plan, Query

log = logging.getLogger(__name__)

# How long one order source may take before the bot answers without the order.
ORDER_LOOKUP_TIMEOUT = 5.0

ACK_EN = "Sure - I'm passing you to a person on our team. They will reply here shortly."
ACK_KO = "상담원에게 연결해 드릴게요. 잠시만 기다려 주세요."


def acknowledgement(text: str) -> str:
    """The hand-over acknowledgement in the customer's language (Korean or English)."""
    return ACK_KO if any("\uac00" <= ch <= "\ud7a3" for ch in text) else ACK_EN


@functools.cache
def _situation_query() -> Any:
    # Built once (bind parameters): composing it per message cost more than running it.
    said = aliased(Message)
    last_out = (
        select(func.max(said.id))
        .where(said.conversation_id == bindparam("conversation_id"), said.direction == "out",
               col(said.private).is_(False), col(said.id) < bindparam("before_id"))
        .scalar_subquery()
    )
    return (
        select(Conversation, Message.author_kind, Message.meta)
        .outerjoin(Message, col(Message.id) == last_out)
        .where(col(Conversation.id) == bindparam("conversation_id"))
    )


def _opened(conversation_id: int, summary: Any, message: dict[str, Any]) -> Conversation | None:
    """The conversation as the event shows it when this message opened it, else None.

    Ingest stamps a conversation it opens and the message that opens it with the same
    time (`inbox.ingest._pick_conversation`); a later message of any conversation is
    stamped after that conversation was committed. Such a conversation has no earlier
    answer of ours and no bot answers yet, and the event carries the rest: the
    responder need not read it back (one session and SELECT less per first message).
    An agent who takes it over meanwhile is caught as before: the answer's UPDATE and
    the hand-over's are guarded by its owner.
    """
    if not isinstance(summary, dict) or summary.get("id") != conversation_id:
        return None
    created = summary.get("created_at")
    if not created or created != message.get("created_at") or not summary.get("contact_id"):
        return None
    # Not validated (`model_construct`, 50 us less): these are the committed row's values.
    return Conversation.model_construct(
        id=conversation_id, contact_id=summary["contact_id"],
        channel=str(summary.get("channel") or ""), provider=str(summary.get("provider") or ""),
        status=str(summary.get("status") or "open"),
        handled_by=str(summary.get("handled_by") or "bot"),
        assignee_id=summary.get("assignee_id"), bot_answers=0,
    )


class FaqResponder:
    """Answers confident FAQ matches; hands everything a person should see to the queue."""

    name = "faq"

    def __init__(self, service: FaqService) -> None:
        self.service = service
        # conversation id -> [lock, users]; dropped when nobody holds or waits for it.
        self._locks: dict[int, list[Any]] = {}

    def wants(self, event: EventOut) -> bool:
        """Whether `handle` could act on this event: a new customer message whose event
        does not already settle that the bot stays silent (no I/O; `Runtime` spawns no
        task for the others)."""
        if event.type != "message.created" or event.conversation_id is None:
            return False
        message = event.payload.get("message") or {}
        if message.get("direction") != "in" or message.get("author") != "customer":
            return False
        return not self._settled(event.payload.get("conversation"), message)

    async def handle(self, event: EventOut, runtime: Runtime) -> None:
        """React to one committed event (only new customer messages matter)."""
        runtime.extras.setdefault("faq", self.service)
        if not self.wants(event):
            return
        message = event.payload.get("message") or {}
        conversation_id = event.conversation_id or 0
        opened = _opened(conversation_id, event.payload.get("conversation"), message)
        slot = self._locks.setdefault(conversation_id, [asyncio.Lock(), 0])
        slot[1] += 1
        try:
            async with slot[0]:
                await self._respond(runtime, conversation_id, message, opened)
        finally:
            slot[1] -= 1
            if slot[1] == 0:
                self._locks.pop(conversation_id, None)

    def _settled(self, conversation: Any, message: dict[str, Any]) -> bool:
        """Whether the event alone shows the bot must stay silent, with no database read.

        The ingest event carries the conversation as committed with the message: handed
        to a person then (the bot only ever gives a conversation away; resolving hands
        it back, after an agent has seen the message), written by a machine, a keyword,
        a channel the bot is off on, or empty. The checks that need facts from the
        database (the last bot answer, the answer count) are left to `_situation`.
        """
        if not isinstance(conversation, dict):
            return False
        early = screen(Situation(
            text=str(message.get("text") or ""),
            channel=str(conversation.get("channel") or ""),
            handled_by=str(conversation.get("handled_by") or "bot"),
            flags=frozenset(message.get("flags") or ()),
            has_attachments=bool(message.get("attachments")),
        ), self.service.policy)
        return early is not None and early.reason in SETTLED_BY_EVENT

    # --- facts ------------------------------------------------------------------------
    async def _situation(
        self, rt: Runtime, conversation_id: int, message: dict[str, Any],
        opened: Conversation | None = None,
    ) -> tuple[Situation, Conversation, dict[str, Any] | None] | None:
        # The conversation, and the last thing we said before this message (notes
        # aside): if it was an FAQ answer, "no, that didn't help" is about that entry.
        # A conversation this message opened has no earlier word of ours to read.
        if opened is not None:
            conv, last_author, last_meta = opened, None, None
        else:
            async with rt.sessions() as session:
                result = await session.exec(_situation_query(), params={  # type: ignore[call-overload]
                    "conversation_id": conversation_id,
                    "before_id": int(message.get("id") or 0)})
                row = result.first()
            if row is None:
                return None
            conv, last_author, last_meta = row
        answered = last_meta if last_author == "bot" else None
        entry_id = answered.get("faq_entry_id") if answered else None
        situation = Situation(
            text=str(message.get("text") or ""),
            channel=conv.channel,
            handled_by=conv.handled_by,
            bot_answers=conv.bot_answers,
            flags=frozenset(message.get("flags") or ()),
            has_attachments=bool(message.get("attachments")),
            answered_entry_id=int(entry_id) if isinstance(entry_id, int) else None,
        )
        return situation, conv, answered

    async def _latest_order(self, rt: Runtime, contact_id: int) -> dict[str, Any] | None:
        """The customer's newest order from the first order source that knows them."""
        if not rt.order_sources:
            return None
        async with rt.sessions() as session:
            identities = await inbox_store.identities_of(session, contact_id=contact_id)
        emails = [i.value for i in identities if i.kind == "email"]
        phones = [i.value for i in identities if i.kind == "phone"]
        if not emails and not phones:
            return None
        for source in rt.order_sources:
            try:
                orders = await asyncio.wait_for(
                    source.orders_for(emails=emails, phones=phones), ORDER_LOOKUP_TIMEOUT)
            except Exception:
                log.exception("order source %s failed", getattr(source, "name", source))
                continue
            if orders:
                return dict(orders[0])
        return None

    # --- acting -----------------------------------------------------------------------
    async def _respond(self, rt: Runtime, conversation_id: int, message: dict[str, Any],
                       opened: Conversation | None = None) -> None:
        found = await self._situation(rt, conversation_id, message, opened)
        if found is None:
            return
        situation, conv, answered = found
        decision, entry = await self.service.evaluate(rt, situation)
        if decision.action == "ignore":
            return
        if decision.action == "answer" and entry is not None:
            text = await self._answer_text(rt, entry, conv)
            if text is None:
                decision = Decision("handover", "needs_order", entry_id=entry.id,
                                    confidence=decision.confidence, record=True)
            else:
                await self._answer(rt, conv, message, entry, text, decision)
                return
        await self._hand_over(rt, conv, message, decision, answered)

    async def _answer_text(self, rt: Runtime, entry: FaqEntry, conv: Conversation) -> str | None:
        """The entry's answer for this customer: personal when it reads their order and
        they have one, else the plain fallback; None when neither is possible."""
        text: str | None
        if uses_order(entry.answer):
            order = await self._latest_order(rt, conv.contact_id)
            text = personalise(entry.answer, order=order) if order is not None else None
            if not (text or "").strip() and entry.answer_fallback:
                text = personalise(entry.answer_fallback, order=None)
        else:
            text = personalise(entry.answer, order=None)
        return text if text and text.strip() else None

    async def _answer(self, rt: Runtime, conv: Conversation, message: dict[str, Any],
                      entry: FaqEntry, text: str, decision: Decision) -> None:
        rendered = render(text, conv.channel)
        try:
            # One transaction: unless an agent took the conversation while we were
            # matching (its guarded UPDATE then changes nothing and we stay silent), the
            # message with its outbox row, the bot-answer count, the entry's count and
            # the event commit together.
            await replies.bot_answer(
                rt, conversation_id=conv.id or 0, text=rendered.text, html=rendered.html,
                meta={"faq_entry_id": entry.id, "faq_question": entry.question,
                      "confidence": decision.confidence, "faq_reply_to": message.get("id")},
                also=_counted(entry.id or 0))
        except InboxError as exc:
            # Opted out, channel not configured: a person decides what to do.
            log.info("FAQ answer refused in conversation %s: %s", conv.id, exc.detail)
            await self._hand_over(rt, conv, message, Decision(
                "handover", "send_refused", entry_id=entry.id, record=True), None)

    async def _hand_over(self, rt: Runtime, conv: Conversation, message: dict[str, Any],
                         decision: Decision, answered: dict[str, Any] | None) -> None:
        conversation_id = conv.id or 0
        text = str(message.get("text") or "")
        try:
            # `conv` as `_situation` found it (read back, or the event's): unless someone
            # changed its status or owner since, the hand-over is one UPDATE and the
            # inserts (the note, the unanswered question, the acknowledgement with its
            # outbox row, the events), in one transaction.
            await pipeline.hand_over(
                rt, conversation_id=conversation_id, reason=reason_text(decision.reason),
                known=conv, also=_record(conversation_id, message, decision, answered),
                acknowledge=acknowledgement(text) if decision.acknowledge else None,
                acknowledge_meta={"faq_handover": decision.reason})
        except InboxError as exc:
            log.info("hand-over of conversation %s failed: %s", conversation_id, exc.detail)


def _counted(entry_id: int) -> Plan[None]:
    """The entry's answer count, in the answer's transaction."""
    yield store.answer_count_row(entry_id=entry_id)


def _record(conversation_id: int, message: dict[str, Any], decision: Decision,
            answered: dict[str, Any] | None) -> Plan[None]:
    """The responder's rows in the hand-over's transaction: the rejected entry's count
    and the unanswered question commit with the note, or not at all."""
    text = str(message.get("text") or "")
    question_id = message.get("id")
    if decision.feedback_entry_id is not None:
        yield Query(_count_rejected(), {"entry_id": decision.feedback_entry_id})
        # The unanswered question is the one the rejected answer was for.
        asked = answered.get("faq_reply_to") if answered else None
        if isinstance(asked, int):
            (original,) = (yield Query(_message_text(), {"message_id": asked})) or (None,)
            if original is not None and original.text.strip():
                text, question_id = original.text, asked
    if decision.record and text.strip():
        yield store.unanswered_row(
            message_id=question_id if isinstance(question_id, int) else None,
            conversation_id=conversation_id, text=text, reason=decision.reason)


@functools.cache
def _count_rejected() -> Any:
    # The customer said entry `entry_id`'s answer did not help (store.count_handover_after_answer).
    table: Any = FaqEntry.__table__
    return (sa_update(table).where(table.c.id == bindparam("entry_id"))
            .values(handovers_after_answer=table.c.handovers_after_answer + 1))


@functools.cache
def _message_text() -> Any:
    table: Any = Message.__table__
    return sa_select(table.c.text).where(table.c.id == bindparam("message_id"))
