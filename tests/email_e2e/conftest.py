"""Fixtures for the email end-to-end tests (helpers live in `helpers.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.email_e2e.helpers import SmtpSink
from tests.support.server import free_port as server_free_port


@pytest.fixture
async def relay() -> AsyncIterator[SmtpSink]:
    """A real aiosmtpd server on the test's loop, standing in for our outbound relay."""
    sink = SmtpSink()
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function giving a free TCP port (the Dovecot fixture reused from
    tests/connectors/email asks for it)."""
    return server_free_port
