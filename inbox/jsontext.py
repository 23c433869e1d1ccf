"""JSON text for the store and the wire, made by orjson where it gives what the standard
library would (16 us -> 2 us of a webhook's encoding: its event's payload, 1-2 KB, and
its message's four JSON columns), by `json` otherwise.

    compact(value)   the compact, non-ASCII-escaped text `json.dumps(value,
                     separators=(",", ":"), ensure_ascii=False)` gives
    column(value)    the text a JSON column stores (the engine's `json_serializer`)

orjson is asked for nothing the standard library would refuse: datetimes, dataclasses
and subclasses are passed through (it then raises, and `json` decides, raising
TypeError as before), and what orjson itself refuses (a lone surrogate from a JSON
webhook's escape, a non-string key, an integer beyond 64 bits) goes to `json` too.
Numbers may be spelled differently (1e16, not 1e+16; NaN as null): the same values.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_STRICT = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
           | orjson.OPT_PASSTHROUGH_SUBCLASS)


def compact(value: Any) -> str:
    """`value` as compact JSON text, non-ASCII characters as themselves (a lone
    surrogate stays in the text, as `json` leaves it: the caller decides)."""
    try:
        return orjson.dumps(value, option=_STRICT).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def column(value: Any) -> str:
    """`value` as the JSON text a JSON column stores (compact; escaped as ASCII only
    when `json` decides, for what orjson refuses)."""
    try:
        return orjson.dumps(value, option=_STRICT).decode()
    except TypeError:
        return json.dumps(value)
