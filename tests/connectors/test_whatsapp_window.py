"""The 24-hour customer-service window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.whatsapp_window import WINDOW, ensure_free_form_allowed, window_state
from inbox.errors import Conflict
from inbox.types import TemplateRef

LAST = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_window_is_open_at_23h59_after_the_customer_wrote() -> None:
    state = window_state(LAST, LAST + timedelta(hours=23, minutes=59))
    assert state.open
    assert state.closes_at == LAST + WINDOW
    assert state.seconds_left == 60


def test_window_is_closed_at_24h01_after_the_customer_wrote() -> None:
    state = window_state(LAST, LAST + timedelta(hours=24, minutes=1))
    assert not state.open
    assert state.closes_at == LAST + WINDOW
    assert state.seconds_left == 0


def test_window_closes_exactly_at_24_hours() -> None:
    assert not window_state(LAST, LAST + WINDOW).open
    assert window_state(LAST, LAST + WINDOW - timedelta(microseconds=1)).open


def test_no_customer_message_means_closed_without_closing_time() -> None:
    state = window_state(None, LAST)
    assert (state.open, state.closes_at, state.seconds_left) == (False, None, 0)


def test_naive_timestamps_are_read_as_utc_and_offsets_are_respected() -> None:
    naive = LAST.replace(tzinfo=None)
    assert window_state(naive, LAST + timedelta(hours=1)).seconds_left == 23 * 3600
    plus_two = LAST.astimezone(timezone(timedelta(hours=2)))
    assert window_state(plus_two, LAST + timedelta(hours=1)).seconds_left == 23 * 3600


def test_a_timestamp_from_the_future_counts_as_just_now() -> None:
    state = window_state(LAST + timedelta(minutes=5), LAST)
    assert state.open
    assert state.seconds_left == 24 * 3600


def test_now_defaults_to_the_clock() -> None:
    assert window_state(datetime.now(UTC) - timedelta(hours=1)).open


def test_free_form_reply_outside_the_window_is_refused_with_a_reason() -> None:
    with pytest.raises(Conflict) as caught:
        ensure_free_form_allowed(LAST, LAST + timedelta(hours=25))
    assert caught.value.extra["reason"] == "whatsapp_window_closed"
    with pytest.raises(Conflict):
        ensure_free_form_allowed(None, LAST)


def test_templates_may_go_outside_the_window_and_anything_inside_it() -> None:
    ensure_free_form_allowed(LAST, LAST + timedelta(hours=25), template=TemplateRef(name="HX1"))
    ensure_free_form_allowed(LAST, LAST + timedelta(hours=23))
