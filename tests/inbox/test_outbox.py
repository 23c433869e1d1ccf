"""The outbox dispatcher through the real Twilio connector against a fake Twilio API.

Retries, final failures, opt-outs reported by Twilio, resuming after a restart, and
never sending one message twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from inbox import pipeline
from inbox.errors import PolicyRefused
from inbox.models import Identity, Message, OutboxRow
from inbox.outbox import Dispatcher
from inbox.runtime import Runtime
from inbox.settings import Settings
from inbox.types import FLAG_OPT_OUT, Inbound, utcnow
from tests.conftest import make_settings
from tests.fakes.twilio_recorder import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioRecorder
from web.app import build_runtime

OUR_NUMBER = "+15550009999"
CUSTOMER = "+15550102030"


@pytest.fixture
def settings(database_url: str, twilio_recorder: TwilioRecorder) -> Settings:
    """Settings with Twilio pointed at the recorder."""
    return make_settings(database_url, twilio_account_sid=TEST_ACCOUNT_SID,
                         twilio_auth_token=TEST_AUTH_TOKEN,
                         twilio_api_base=twilio_recorder.base_url)


@pytest.fixture
async def second_rt(settings: Settings) -> AsyncIterator[Runtime]:
    """Another process's runtime on the same database (its own engine and dispatcher)."""
    runtime = await build_runtime(settings, migrate_db=False, responders=lambda s: [])
    try:
        yield runtime
    finally:
        await runtime.close()


async def _reply(rt: Runtime, text: str = "Your order ships today.", *, channel: str = "sms") -> int:
    inbound = Inbound(channel=channel, provider="twilio", provider_message_id=f"SMin-{channel}",
                      sender=CUSTOMER, sender_kind="phone", recipient=OUR_NUMBER, text="Where is it?")
    result = await pipeline.ingest(rt, inbound)
    message = await pipeline.reply(rt, conversation_id=result.conversation_id, text=text)
    return int(message["id"])


async def _state(rt: Runtime, message_id: int) -> tuple[Message, OutboxRow]:
    async with rt.sessions() as session:
        message = await session.get(Message, message_id)
        row = (await session.exec(select(OutboxRow).where(OutboxRow.message_id == message_id))).scalars().first()  # type: ignore[call-overload]
        assert message is not None and row is not None
        return message, row


async def _dispatch_until_settled(rt: Runtime, message_id: int, *, passes: int = 50) -> tuple[Message, OutboxRow]:
    """Run dispatcher passes (waiting out the short test backoff) until the row is final."""
    assert rt.dispatcher is not None
    for _ in range(passes):
        await rt.dispatcher.run_once()
        _message, row = await _state(rt, message_id)
        if row.state in ("done", "failed"):
            return await _state(rt, message_id)  # both settled in one commit; read again
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox row still {row.state} after {passes} passes")


def _form(recorder: TwilioRecorder, index: int = 0) -> dict[str, Any]:
    return {k: v[0] for k, v in recorder.message_requests[index].form.items()}


async def test_reply_is_sent_through_twilio_and_records_the_provider_sid(
    rt: Runtime, twilio_recorder: TwilioRecorder
) -> None:
    mid = await _reply(rt)
    message, row = await _dispatch_until_settled(rt, mid)
    assert row.state == "done" and row.attempts == 1
    [sent] = twilio_recorder.messages
    assert sent["To"] == [CUSTOMER] and sent["From"] == [OUR_NUMBER]
    assert sent["Body"] == ["Your order ships today."]
    assert message.provider_message_id and message.provider_message_id.startswith("SM")
    assert message.delivery_status == "queued"


async def test_whatsapp_reply_goes_to_whatsapp_addresses(
    rt: Runtime, twilio_recorder: TwilioRecorder
) -> None:
    mid = await _reply(rt, channel="whatsapp")
    await _dispatch_until_settled(rt, mid)
    [sent] = twilio_recorder.messages
    assert sent["To"] == [f"whatsapp:{CUSTOMER}"] and sent["From"] == [f"whatsapp:{OUR_NUMBER}"]


@pytest.mark.parametrize("status", [429, 503])
async def test_retryable_twilio_failure_is_retried_and_then_succeeds(
    rt: Runtime, twilio_recorder: TwilioRecorder, status: int
) -> None:
    twilio_recorder.fail_next(status)
    mid = await _reply(rt)
    message, row = await _dispatch_until_settled(rt, mid)
    assert len(twilio_recorder.message_requests) == 2
    assert len(twilio_recorder.messages) == 1
    assert row.state == "done" and row.attempts == 2
    assert message.delivery_status in ("queued", "sent")
    sid = message.provider_message_id or ""
    assert sid.startswith("SM") and len(sid) == 34


async def test_non_retryable_failure_marks_message_failed_with_code_and_reason(
    rt: Runtime, twilio_recorder: TwilioRecorder
) -> None:
    twilio_recorder.fail_next(400, code=21211)
    mid = await _reply(rt)
    message, row = await _dispatch_until_settled(rt, mid)
    assert len(twilio_recorder.message_requests) == 1
    assert row.state == "failed"
    assert message.delivery_status == "failed"
    assert message.error_code == "21211"
    assert "Invalid 'To' Phone Number" in (message.error_text or "")


async def test_failure_is_published_to_agents_as_message_updated(
    rt: Runtime, twilio_recorder: TwilioRecorder
) -> None:
    twilio_recorder.fail_next(400, code=21211)
    mid = await _reply(rt)
    sub = rt.hub.subscribe()
    await _dispatch_until_settled(rt, mid)
    event = sub.get_nowait()
    assert event is not None and event.type == "message.updated"
    assert event.payload["message"]["delivery_status"] == "failed"
    assert event.payload["message"]["error_code"] == "21211"


async def test_unsubscribed_recipient_error_marks_identity_opted_out(
    rt: Runtime, twilio_recorder: TwilioRecorder
) -> None:
    twilio_recorder.fail_next(400, code=21610)
    mid = await _reply(rt)
    message, row = await _dispatch_until_settled(rt, mid)
    assert row.state == "failed" and message.error_code == "21610"
    async with rt.sessions() as session:
        [identity] = (await session.exec(select(Identity))).scalars().all()  # type: ignore[call-overload]
    assert identity.opted_out
    with pytest.raises(PolicyRefused):
        await pipeline.reply(rt, conversation_id=message.conversation_id, text="one more")
    assert len(twilio_recorder.message_requests) == 1


async def test_retries_stop_after_the_configured_number_of_attempts(
    database_url: str, twilio_recorder: TwilioRecorder
) -> None:
    settings = make_settings(database_url, twilio_account_sid=TEST_ACCOUNT_SID,
                             twilio_auth_token=TEST_AUTH_TOKEN,
                             twilio_api_base=twilio_recorder.base_url, outbox_max_attempts=3)
    rt = await build_runtime(settings, migrate_db=False, responders=lambda s: [])
    try:
        twilio_recorder.fail_next(503, times=5)
        mid = await _reply(rt)
        message, row = await _dispatch_until_settled(rt, mid)
    finally:
        await rt.close()
    assert row.state == "failed" and row.attempts == 3
    assert message.delivery_status == "failed"
    assert len(twilio_recorder.message_requests) == 3


async def test_reply_stored_while_no_dispatcher_runs_is_sent_once_after_restart(
    database_url: str, settings: Settings, twilio_recorder: TwilioRecorder
) -> None:
    # "Before the crash": a runtime whose dispatcher never runs stores the reply.
    before = await build_runtime(settings, migrate_db=False, responders=lambda s: [])
    try:
        mid = await _reply(before)
    finally:
        await before.close()
    assert twilio_recorder.message_requests == []

    # "After the restart": a new runtime on the same database, dispatcher running.
    after = await build_runtime(settings, migrate_db=False, responders=lambda s: [])
    assert after.dispatcher is not None
    after.dispatcher.start()
    try:
        await twilio_recorder.wait_for_async(1, timeout=10)
        for _ in range(200):
            _message, row = await _state(after, mid)
            if row.state == "done":
                break
            await asyncio.sleep(0.05)
        await after.dispatcher.run_once()  # one more pass finds nothing to send
        message, row = await _state(after, mid)
    finally:
        await after.dispatcher.stop()
        await after.close()
    assert row.state == "done" and message.provider_message_id
    assert len(twilio_recorder.message_requests) == 1


async def test_row_left_sending_by_a_crashed_worker_is_sent_after_its_lease(
    rt: Runtime, twilio_recorder: TwilioRecorder
) -> None:
    mid = await _reply(rt)
    async with rt.sessions() as session, session.begin():
        await session.exec(update(OutboxRow).where(OutboxRow.message_id == mid)  # type: ignore[call-overload]
                           .values(state="sending", attempts=1,
                                   lease_until=utcnow() + timedelta(minutes=5)))
    assert rt.dispatcher is not None
    assert await rt.dispatcher.run_once() == 0  # still leased by the "crashed" worker
    async with rt.sessions() as session, session.begin():
        await session.exec(update(OutboxRow).where(OutboxRow.message_id == mid)  # type: ignore[call-overload]
                           .values(lease_until=utcnow() - timedelta(seconds=1)))
    message, row = await _dispatch_until_settled(rt, mid)
    assert row.state == "done"
    assert len(twilio_recorder.message_requests) == 1


async def test_running_the_dispatcher_twice_sends_once(
    rt: Runtime, twilio_recorder: TwilioRecorder
) -> None:
    mid = await _reply(rt)
    assert rt.dispatcher is not None
    assert await rt.dispatcher.run_once() == 1
    assert await rt.dispatcher.run_once() == 0
    _message, row = await _state(rt, mid)
    assert row.state == "done"
    assert len(twilio_recorder.message_requests) == 1


async def test_two_dispatchers_running_concurrently_send_each_message_once(
    rt: Runtime, second_rt: Runtime, twilio_recorder: TwilioRecorder
) -> None:
    ids = [await _reply(rt, f"reply {i}") for i in range(3)]
    first, second = Dispatcher(rt), Dispatcher(second_rt)
    for _ in range(3):
        await asyncio.gather(first.run_once(), second.run_once(), first.run_once(), second.run_once())
    bodies = sorted(_form(twilio_recorder, i)["Body"] for i in range(len(twilio_recorder.message_requests)))
    assert bodies == ["reply 0", "reply 1", "reply 2"]
    for mid in ids:
        _message, row = await _state(rt, mid)
        assert row.state == "done" and row.attempts == 1


async def test_reply_queued_before_the_customer_opted_out_is_never_sent(
    rt: Runtime, twilio_recorder: TwilioRecorder
) -> None:
    # The first attempt fails and is retried later; STOP arrives in between.
    twilio_recorder.fail_next(503)
    mid = await _reply(rt)
    assert rt.dispatcher is not None
    await rt.dispatcher.run_once()
    await pipeline.ingest(rt, Inbound(channel="sms", provider="twilio", provider_message_id="SMstop",
                                      sender=CUSTOMER, sender_kind="phone", recipient=OUR_NUMBER,
                                      text="STOP", flags=frozenset({FLAG_OPT_OUT})))
    message, row = await _dispatch_until_settled(rt, mid)
    assert len(twilio_recorder.message_requests) == 1  # only the failed first attempt
    assert row.state == "failed" and message.delivery_status == "failed"
    assert "opted out" in (message.error_text or "")
