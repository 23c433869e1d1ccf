"""`inbox.jsontext`: orjson's text where the standard library would give the same (the
store and the wire read it back as the same values), `json`'s wherever orjson differs."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from inbox import jsontext


def _value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "none", "bool"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(rng.choice("ab \"\\/\n\t\x00\x1fé한🙂<>&'") for _ in range(rng.randint(0, 12)))
    if kind == "int":
        return rng.randint(-2**63, 2**64 - 1)
    if kind == "float":
        return rng.choice((0.5, -2.25, 1234.125, 0.1, 3.0))
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {str(_value(rng, 3)): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_compact_and_column_text_read_back_as_the_same_values() -> None:
    rng = random.Random(9)
    for _ in range(2000):
        value = _value(rng)
        assert jsontext.compact(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        assert json.loads(jsontext.column(value)) == value


@pytest.mark.parametrize("value", [
    {"text": "\ud800 lone"},  # a JSON webhook's escape of half a surrogate pair
    {"n": 2**70},
    {1: "int key"},
])
def test_what_orjson_refuses_is_written_by_json(value: Any) -> None:
    assert jsontext.compact(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert jsontext.column(value) == json.dumps(value)


@pytest.mark.parametrize("value", [{"at": datetime(2026, 1, 2, tzinfo=UTC)}, {"x": object()}])
def test_what_json_refuses_is_still_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        jsontext.compact(value)
    with pytest.raises(TypeError):
        jsontext.column(value)
