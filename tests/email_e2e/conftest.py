"""Fixtures for the email end-to-end tests (helpers live in `helpers.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.email_e2e.helpers import SmtpSink


@pytest.fixture
async def relay() -> AsyncIterator[SmtpSink]:
    """A real aiosmtpd server on the test's loop, standing in for our outbound relay."""
    sink = SmtpSink()
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()
