"""WhatsApp's 24-hour customer-service window, as a pure function.

A business may send free-form messages to a WhatsApp user only within 24 hours of that
user's last message; after that only approved templates go out (Meta: "customer service
windows", https://developers.facebook.com/docs/whatsapp/pricing#customer-service-windows;
Twilio error 63016 when it is ignored). The same rule applies whether the WhatsApp
message goes through Twilio or Meta's Cloud API.

Naive datetimes (as some databases return them) are read as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from inbox.errors import Conflict

WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class WindowState:
    """Whether free-form messages may be sent now, and until when.

    `closes_at` is None when the customer never wrote; `seconds_left` is 0 when closed.
    """

    open: bool
    closes_at: datetime | None
    seconds_left: int


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def window_state(
    last_customer_message_at: datetime | None, now: datetime | None = None
) -> WindowState:
    """The window after the customer's last inbound message at `now` (default: the clock).

    Promises: open exactly while `now < last_customer_message_at + 24h`; `seconds_left`
    is a whole number of seconds, rounded down, never more than 24 hours (a timestamp
    from the future, from clock skew, counts as "just now").
    """
    now = _aware(now) if now is not None else datetime.now(UTC)
    if last_customer_message_at is None:
        return WindowState(open=False, closes_at=None, seconds_left=0)
    closes_at = min(_aware(last_customer_message_at), now) + WINDOW
    left = closes_at - now
    if left <= timedelta(0):
        return WindowState(open=False, closes_at=closes_at, seconds_left=0)
    return WindowState(open=True, closes_at=closes_at, seconds_left=int(left.total_seconds()))


def ensure_free_form_allowed(
    last_customer_message_at: datetime | None,
    now: datetime | None = None,
    *,
    template: object | None = None,
) -> None:
    """Raise `Conflict` (reason "whatsapp_window_closed") for a free-form message outside the window.

    A message with a `template` may always go; so may anything while the window is open.
    Both WhatsApp connectors call this from their `check_reply`.
    """
    if template is not None:
        return
    state = window_state(last_customer_message_at, now)
    if state.open:
        return
    when = f" closed at {state.closes_at.isoformat()}" if state.closes_at else " is not open"
    raise Conflict(
        f"the WhatsApp 24-hour window{when}: only an approved template can be sent now",
        extra={
            "reason": "whatsapp_window_closed",
            "closes_at": state.closes_at.isoformat() if state.closes_at else None,
        },
    )
