"""Text of UTC instants, formatted once per instant: a message's step writes the same
instant several times (stored as the message's, the conversation's last activity and
the event's time; in the event as JSON) and `datetime.isoformat` is the costly part.

    utc_text(v)   "2026-01-02 03:04:05.060708": what SQLite columns store
    utc_json(v)   "2026-01-02T03:04:05.060708Z": as pydantic's JSON mode writes it
                  (no fraction when the microsecond is 0)
    utc_iso(v)    v.isoformat(): "2026-01-02T03:04:05.060708+00:00"

Each takes an aware datetime whose tzinfo is `datetime.UTC` (callers check).
"""

from __future__ import annotations

import functools
from datetime import datetime


@functools.lru_cache(maxsize=256)
def utc_text(value: datetime) -> str:
    """`value` as SQLite columns store it (microseconds always written)."""
    return value.isoformat(" ", "microseconds")[:-6]  # less its "+00:00"


def utc_json(value: datetime) -> str:
    """`value` as pydantic writes a UTC datetime in JSON mode."""
    return _iso_local(value) + "Z"


def utc_iso(value: datetime) -> str:
    """`value.isoformat()`."""
    return _iso_local(value) + "+00:00"


def _iso_local(value: datetime) -> str:
    # "2026-01-02T03:04:05[.060708]": isoformat() less its offset, cut from `utc_text`.
    text = utc_text(value)
    return f"{text[:10]}T{text[11:19] if value.microsecond == 0 else text[11:]}"
