"""Pytest fixtures for the provider fakes (function-scoped: each test gets a fresh server).

Use with ``pytest_plugins = ["tests.fakes.fixtures"]`` in a conftest, or import the
fixture names into a test module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.twilio_recorder import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioRecorder


@pytest.fixture
def twilio_recorder() -> Iterator[TwilioRecorder]:
    """A started fake Twilio API expecting TEST_ACCOUNT_SID / TEST_AUTH_TOKEN."""
    with TwilioRecorder(account_sid=TEST_ACCOUNT_SID, auth_token=TEST_AUTH_TOKEN) as recorder:
        yield recorder
