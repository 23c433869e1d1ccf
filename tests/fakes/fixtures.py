"""Pytest fixtures for the provider fakes (function-scoped: each test gets a fresh server).

Use with ``pytest_plugins = ["tests.fakes.fixtures"]`` in a conftest, or import the
fixture names into a test module.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.graph_recorder import TEST_ACCESS_TOKEN, GraphRecorder
from tests.fakes.twilio_recorder import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TwilioRecorder


@pytest.fixture
def twilio_recorder() -> Iterator[TwilioRecorder]:
    """A started fake Twilio API expecting TEST_ACCOUNT_SID / TEST_AUTH_TOKEN."""
    with TwilioRecorder(account_sid=TEST_ACCOUNT_SID, auth_token=TEST_AUTH_TOKEN) as recorder:
        yield recorder


@pytest.fixture
def graph_recorder() -> Iterator[GraphRecorder]:
    """A started fake Graph API expecting TEST_ACCESS_TOKEN; `.base_url` ends in /v21.0."""
    with GraphRecorder(access_token=TEST_ACCESS_TOKEN) as recorder:
        yield recorder
