"""The dispatcher: sends due outbox rows through the conversation's connector.

A row is claimed with a lease (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so several
workers never take the same row), sent, and settled: done with the provider id,
retried with capped exponential backoff when the failure is retryable, failed with the
reason otherwise. Rows left `sending` by a crashed worker are taken again once their
lease expires, so a restart resumes unfinished work.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from sqlalchemy import or_, select, update

from inbox import store
from inbox.errors import InboxError, SendFailed
from inbox.events import EventOut
from inbox.models import Contact, Conversation, Identity, Message, OutboxRow
from inbox.runtime import Runtime
from inbox.schemas import message_out
from inbox.types import Attachment, Outbound, SendResult, TemplateRef, ThreadHints, utcnow

log = logging.getLogger(__name__)

# How long a claimed row stays ours before another worker may take it (a send to
# Twilio/Meta/SMTP finishes well within this; the client timeouts are shorter).
LEASE = timedelta(seconds=60)
BATCH = 20


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Delay before retry number `attempt` (1-based): base * 2**(attempt-1), capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


class Dispatcher:
    """Background sender of outbox rows; `wake()` after committing new rows."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """Look for due rows now."""
        self._wake.set()

    def start(self) -> None:
        """Run the dispatch loop in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop (a row being sent finishes first or is retried after its lease)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                sent = await self.run_once()
            except Exception:
                log.exception("outbox pass failed")
                sent = 0
            if sent:
                continue
            delay = await self._next_due_in()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def _next_due_in(self) -> float:
        try:
            async with self.rt.sessions() as session:
                result = await session.exec(  # type: ignore[call-overload]
                    select(OutboxRow.next_attempt_at, OutboxRow.lease_until, OutboxRow.state)
                    .where(OutboxRow.state.in_(("pending", "sending")))  # type: ignore[attr-defined]
                    .order_by(OutboxRow.next_attempt_at)
                    .limit(50)
                )
                now = utcnow()
                waits = []
                for due, lease, state in result.all():
                    at = lease if state == "sending" and lease else due
                    waits.append((at - now).total_seconds())
        except Exception:
            log.exception("outbox: could not read the next due time")
            return 5.0
        # Jitter keeps several workers from polling in lock-step.
        return max(0.05, min([30.0, *waits])) + random.uniform(0, 0.05)

    async def run_once(self) -> int:
        """Claim and send the rows due now; returns how many were attempted."""
        claimed = await self._claim()
        for row_id in claimed:
            await self._send(row_id)
        return len(claimed)

    async def _claim(self) -> list[int]:
        now = utcnow()
        due = or_(
            (OutboxRow.state == "pending") & (OutboxRow.next_attempt_at <= now),  # type: ignore[operator]
            (OutboxRow.state == "sending") & (OutboxRow.lease_until <= now),  # type: ignore[operator]
        )
        async with self.rt.sessions() as session, session.begin():
            query = (
                select(OutboxRow.id)
                .where(due)
                .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
                .limit(BATCH)
            )
            if not self.rt.settings.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            candidates = list((await session.exec(query)).scalars().all())  # type: ignore[call-overload]
            claimed: list[int] = []
            for row_id in candidates:
                # Compare-and-set: SQLite has no row locks, so another dispatcher may have
                # claimed this row since we read it; only the update that still finds it
                # due wins (without this, two dispatchers sent the same message twice).
                result = await session.exec(  # type: ignore[call-overload]
                    update(OutboxRow)
                    .where(OutboxRow.id == row_id, due)  # type: ignore[arg-type]
                    .values(state="sending", lease_until=now + LEASE, updated_at=now,
                            attempts=OutboxRow.attempts + 1)
                )
                if result.rowcount == 1:
                    claimed.append(row_id)
            return claimed

    async def _send(self, row_id: int) -> None:
        rt = self.rt
        async with rt.sessions() as session:
            row = await session.get(OutboxRow, row_id)
            if row is None or row.state != "sending":
                return
            message = await session.get(Message, row.message_id)
            conv = await session.get(Conversation, message.conversation_id) if message else None
            if message is None or conv is None:
                return
            outbound = await _outbound_for(session, conv, message)
            attempts = row.attempts
            identity = await session.get(Identity, conv.identity_id) if conv.identity_id else None
        result: SendResult | None = None
        error: SendFailed | None = None
        try:
            if identity is not None and identity.opted_out:
                # reply() checks at store time; a row queued or retried before the STOP
                # arrived must not go out after it (DESIGN: nothing until START).
                raise SendFailed("not sent: the customer opted out after this was queued",
                                 retryable=False)
            connector = rt.connector(conv.provider)
            result = await connector.send(outbound)
        except SendFailed as exc:
            error = exc
        except InboxError as exc:
            error = SendFailed(exc.detail, retryable=False)
        except Exception as exc:  # a connector bug or network fault: retry, it may pass
            log.exception("connector %s raised while sending message %s", conv.provider, message.id)
            error = SendFailed(f"{type(exc).__name__}: {exc}", retryable=True)
        await self._settle(row_id, result=result, error=error, attempts=attempts)

    async def _settle(
        self, row_id: int, *, result: SendResult | None, error: SendFailed | None, attempts: int
    ) -> None:
        rt = self.rt
        s = rt.settings
        now = utcnow()
        events: list[EventOut] = []
        async with rt.sessions() as session, session.begin():
            row = await session.get(OutboxRow, row_id)
            if row is None:
                return
            message = await session.get(Message, row.message_id)
            if message is None:
                return
            row.updated_at, row.lease_until = now, None
            if result is not None:
                row.state, row.last_error = "done", None
                message.provider_message_id = result.provider_message_id
                if message.channel == "email":
                    message.thread_message_id = result.provider_message_id
                # A status callback may already have moved it further; keep the furthest.
                if message.delivery_status in (None, "pending", "queued"):
                    message.delivery_status = result.status
            else:
                assert error is not None
                row.last_error = error.detail[:1000]
                if error.retryable and attempts < s.outbox_max_attempts:
                    delay = error.retry_after or backoff_seconds(
                        attempts, base=s.outbox_retry_base, cap=s.outbox_retry_cap)
                    row.state = "pending"
                    row.next_attempt_at = now + timedelta(seconds=delay)
                    message.error_text = f"retrying: {error.detail}"[:1000]
                else:
                    row.state = "failed"
                    message.delivery_status = "failed"
                    message.error_code = error.error_code
                    message.error_text = error.detail[:1000]
                    if error.opted_out:
                        events.extend(await _record_opt_out(session, message))
            events.append(await store.add_event(
                session, type="message.updated", conversation_id=message.conversation_id,
                payload={"message": message_out(message)}))
        rt.after_commit(events)


async def _record_opt_out(session: object, message: Message) -> list[EventOut]:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from inbox.schemas import contact_out

    assert isinstance(session, AsyncSession)
    conv = await session.get(Conversation, message.conversation_id)
    if conv is None or conv.identity_id is None:
        return []
    identity = await session.get(Identity, conv.identity_id)
    if identity is None or identity.opted_out:
        return []
    identity.opted_out, identity.opted_out_at = True, utcnow()
    contact = await session.get(Contact, identity.contact_id)
    if contact is None:
        return []
    await session.flush()
    identities = await store.identities_of(session, contact_id=contact.id or 0)
    return [await store.add_event(session, type="contact.updated", conversation_id=None,
                                  payload={"contact": contact_out(contact, identities)})]


async def _outbound_for(session: object, conv: Conversation, message: Message) -> Outbound:
    """The connector's view of a stored outbound message."""
    from sqlmodel.ext.asyncio.session import AsyncSession

    from inbox.models import StoredFile

    assert isinstance(session, AsyncSession)
    to = conv.customer_address or ""
    name = None
    if conv.identity_id is not None:
        identity = await session.get(Identity, conv.identity_id)
        if identity is not None:
            to = identity.raw or identity.value
    contact = await session.get(Contact, conv.contact_id)
    if contact is not None:
        name = contact.name
    # Email threading: answer the customer's latest message, carry its references.
    thread = ThreadHints(subject=conv.subject)
    if conv.channel == "email":
        result = await session.exec(  # type: ignore[call-overload]
            select(Message)
            .where(Message.conversation_id == conv.id, Message.thread_message_id.is_not(None),  # type: ignore[union-attr]
                   Message.id < message.id)  # type: ignore[operator]
            .order_by(Message.id.desc())  # type: ignore[union-attr]
            .limit(1)
        )
        last = result.scalars().first()
        refs_result = await session.exec(  # type: ignore[call-overload]
            select(Message.thread_message_id)
            .where(Message.conversation_id == conv.id, Message.thread_message_id.is_not(None))  # type: ignore[union-attr]
            .order_by(Message.id)
        )
        # RFC 5322 3.6.4: the parent's References, then the thread's ids (the parent's
        # own last), so the customer's client sees the whole chain, root included.
        parent_refs = last.meta.get("references") if last is not None else None
        ids = [*(parent_refs if isinstance(parent_refs, list) else []), *refs_result.scalars().all()]
        refs = tuple(r for r in dict.fromkeys(ids) if isinstance(r, str) and r)
        thread = ThreadHints(
            subject=conv.subject,
            in_reply_to=last.thread_message_id if last else None,
            references=refs[-20:],
            reply_token=str(conv.id),
        )
    attachments = []
    for att in message.attachments:
        data = None
        if att.get("file_id"):
            blob = await session.get(StoredFile, att["file_id"])
            data = blob.data if blob else None
        attachments.append(Attachment(content_type=att.get("content_type") or "application/octet-stream",
                                      filename=att.get("filename"), url=att.get("url"), data=data))
    template = None
    if isinstance(message.meta.get("template"), dict):
        t = message.meta["template"]
        template = TemplateRef(name=t["name"], language=t.get("language"),
                               variables=dict(t.get("variables") or {}))
    return Outbound(
        message_id=message.id or 0,
        conversation_id=conv.id or 0,
        channel=conv.channel,
        provider=conv.provider,
        to=to,
        from_address=conv.our_address,
        text=message.text,
        html=message.html,
        attachments=attachments,
        template=template,
        thread=thread,
        idempotency_key=f"{message.author_kind}:{message.id}",
        display_name=name,
    )
