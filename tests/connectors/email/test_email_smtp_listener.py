"""The SMTP listener with a real aiosmtpd server and the standard smtplib client."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from connectors.email import parse_message
from connectors.email.smtp_listener import InboxSmtpHandler, accepts, start_smtp_server

OURS = ("support@shop.example",)
MAIL = (
    b"From: Ann <ann@example.com>\r\nTo: support@shop.example\r\nSubject: Order 5\r\n"
    b"Message-ID: <ann.1@example.com>\r\n\r\nWhere is my order?\r\n"
)


def _send(port: int, rcpts: list[str], body: bytes = MAIL) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        return client.sendmail("ann@example.com", rcpts, body)


class Sink:
    def __init__(self, *, fail: int = 0) -> None:
        self.got: list[bytes] = []
        self.fail = fail
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, raw: bytes) -> None:
        self.loop = asyncio.get_running_loop()
        if self.fail:
            self.fail -= 1
            raise RuntimeError("database is down")
        self.got.append(raw)


@pytest.fixture
def listener(free_port: Callable[[], int]) -> Iterator[Callable[..., tuple[Sink, int]]]:
    controllers: list[Controller] = []

    def start(sink: Sink, loop: asyncio.AbstractEventLoop | None = None) -> tuple[Sink, int]:
        port = free_port()
        handler = InboxSmtpHandler(addresses=OURS, on_message=sink, loop=loop)
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return sink, port

    yield start
    for controller in controllers:
        controller.stop()


async def test_mail_for_our_address_reaches_the_callback_on_the_app_loop(listener: Any) -> None:
    sink, port = listener(Sink(), loop=asyncio.get_running_loop())
    refused = await asyncio.to_thread(_send, port, ["Support+c42-abc@Shop.example"])
    assert refused == {}
    [raw] = sink.got
    assert sink.loop is asyncio.get_running_loop()
    inbound = parse_message(raw, our_addresses=OURS)
    assert (inbound.sender, inbound.text, inbound.thread.reply_token) == ("ann@example.com", "Where is my order?", "c42-abc")


def test_mail_for_another_address_is_refused(listener: Any) -> None:
    sink, port = listener(Sink())
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(port, ["someone@elsewhere.example"])
    assert refused.value.recipients["someone@elsewhere.example"][0] == 550
    assert sink.got == []


def test_mixed_recipients_deliver_only_to_ours(listener: Any) -> None:
    sink, port = listener(Sink())
    refused = _send(port, ["support@shop.example", "other@elsewhere.example"])
    assert refused["other@elsewhere.example"][0] == 550
    [raw] = sink.got
    assert raw.startswith(b"Delivered-To: support@shop.example\r\n")


def test_a_failing_callback_answers_451_so_the_sender_retries(listener: Any) -> None:
    sink, port = listener(Sink(fail=1))
    with pytest.raises(smtplib.SMTPDataError) as failure:
        _send(port, ["support@shop.example"])
    assert failure.value.smtp_code == 451
    _send(port, ["support@shop.example"])  # the retry
    assert len(sink.got) == 1


async def test_start_smtp_server_runs_on_the_callers_loop(free_port: Callable[[], int]) -> None:
    sink = Sink()
    port = free_port()
    server = await start_smtp_server(host="127.0.0.1", port=port, addresses=OURS, on_message=sink)
    try:
        await asyncio.to_thread(_send, port, ["support@shop.example"])
    finally:
        server.close()
        await server.wait_closed()
    assert len(sink.got) == 1 and sink.loop is asyncio.get_running_loop()


@pytest.mark.parametrize(
    ("address", "ok"),
    [("support@shop.example", True), ("<SUPPORT@shop.EXAMPLE>", True), ("support+t@shop.example", True),
     ("support@evil.example", False), ("supportx@shop.example", False), ("", False)],
)
def test_accepts(address: str, ok: bool) -> None:
    assert accepts(address, OURS) is ok
