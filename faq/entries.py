"""The public shape of an FAQ entry and the validation of what editors and files send.

`validate_entry` collects every problem (not just the first) so the editor and the
importer can show them all: ``["question: required", "channels: unknown channel 'fax'"]``.
"""

from __future__ import annotations

from typing import Any

from faq.normalise import fold
from faq.render import template_problem
from faq.store import FaqEntry
from inbox.errors import BadInput
from inbox.types import CHANNELS

MAX_QUESTION = 500
MAX_ANSWER = 5000
MAX_ALTERNATES = 200
MAX_TAGS = 30
MAX_TAG = 50
MAX_EXTERNAL_ID = 200

FIELDS = ("external_id", "question", "alternates", "answer", "answer_fallback", "tags",
          "channels", "enabled")
# Read-only fields a client may echo back from GET (ignored on write).
READ_ONLY = ("id", "created_at", "updated_at", "auto_answers", "handovers_after_answer",
             "last_used_at")


def _text(data: dict[str, Any], key: str, problems: list[str], *, limit: int,
          required: bool) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append(f"{key}: required")
        return None
    if not isinstance(value, str):
        problems.append(f"{key}: must be a string, got {type(value).__name__}")
        return None
    value = value.replace("\x00", "").strip()
    if len(value) > limit:
        problems.append(f"{key}: at most {limit} characters (got {len(value)})")
        return None
    return value


def _strings(data: dict[str, Any], key: str, problems: list[str], *, limit: int,
             item_limit: int) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key}: must be a list of strings")
        return []
    out: list[str] = []
    seen: set[str] = set()
    for item in value:
        item = item.replace("\x00", "").strip()
        if not item or fold(item) in seen:
            continue
        if len(item) > item_limit:
            problems.append(f"{key}: each at most {item_limit} characters")
            return []
        seen.add(fold(item))
        out.append(item)
    if len(out) > limit:
        problems.append(f"{key}: at most {limit} items (got {len(out)})")
        return []
    return out


def validate_entry(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """The cleaned column values of an entry from `data`; `BadInput` listing every
    problem (in `extra["reasons"]`). With `partial`, only the fields present are
    checked and returned (a PUT that changes one field)."""
    if not isinstance(data, dict):
        raise BadInput("an FAQ entry is a JSON object", extra={"reasons": ["not an object"]})
    problems: list[str] = []
    for key in data:
        if key not in FIELDS and key not in READ_ONLY and key != "stats":
            problems.append(f"{key}: unknown field (expected {', '.join(FIELDS)})")
    present = [k for k in FIELDS if k in data] if partial else list(FIELDS)
    values: dict[str, Any] = {}
    for key in present:
        if key == "question":
            values[key] = _text(data, key, problems, limit=MAX_QUESTION, required=True)
        elif key == "answer":
            answer = _text(data, key, problems, limit=MAX_ANSWER, required=True)
            if answer is not None and (problem := template_problem(answer)):
                problems.append(f"answer: {problem}")
            values[key] = answer
        elif key == "answer_fallback":
            fallback = _text(data, key, problems, limit=MAX_ANSWER, required=False)
            if fallback is not None and "{" in fallback and (problem := template_problem(fallback)):
                problems.append(f"answer_fallback: {problem}")
            values[key] = fallback
        elif key == "external_id":
            values[key] = _text(data, key, problems, limit=MAX_EXTERNAL_ID, required=False)
        elif key == "alternates":
            values[key] = _strings(data, key, problems, limit=MAX_ALTERNATES, item_limit=MAX_QUESTION)
        elif key == "tags":
            tags = _strings(data, key, problems, limit=MAX_TAGS, item_limit=MAX_TAG)
            values[key] = [t.lower() for t in tags]
        elif key == "channels":
            channels = _strings(data, key, problems, limit=len(CHANNELS), item_limit=20)
            unknown = [c for c in channels if c not in CHANNELS]
            if unknown:
                problems.append(f"channels: unknown channel {', '.join(map(repr, unknown))} "
                                f"(expected some of {', '.join(CHANNELS)}; none = all)")
            values[key] = [c for c in CHANNELS if c in channels]
        elif key == "enabled":
            enabled = data.get(key, True)
            if not isinstance(enabled, bool):
                problems.append("enabled: must be true or false")
            values[key] = bool(enabled)
    if problems:
        raise BadInput("; ".join(problems), extra={"reasons": problems})
    return values


def entry_out(entry: FaqEntry) -> dict[str, Any]:
    """An entry as the API shows it, stats included."""
    return {
        "id": entry.id,
        "external_id": entry.external_id,
        "question": entry.question,
        "alternates": list(entry.alternates),
        "answer": entry.answer,
        "answer_fallback": entry.answer_fallback,
        "tags": list(entry.tags),
        "channels": list(entry.channels),
        "enabled": entry.enabled,
        "created_at": entry.created_at.isoformat(),
        "updated_at": entry.updated_at.isoformat(),
        "auto_answers": entry.auto_answers,
        "handovers_after_answer": entry.handovers_after_answer,
        "last_used_at": entry.last_used_at.isoformat() if entry.last_used_at else None,
    }


def entry_export(entry: FaqEntry) -> dict[str, Any]:
    """An entry in the import file format (round-trips through `faq import`)."""
    out: dict[str, Any] = {}
    if entry.external_id:
        out["id"] = entry.external_id
    out.update(question=entry.question, alternates=list(entry.alternates), answer=entry.answer,
               tags=list(entry.tags))
    if entry.answer_fallback:
        out["answer_fallback"] = entry.answer_fallback
    if entry.channels:
        out["channels"] = list(entry.channels)
    if not entry.enabled:
        out["enabled"] = False
    return out


def matches_search(entry: FaqEntry, query: str) -> bool:
    """Whether every word of `query` appears in the entry's question, alternates,
    answer or tags (case- and accent-insensitive)."""
    hay = fold(" ".join([entry.question, *entry.alternates, entry.answer, *entry.tags,
                         entry.external_id or ""]))
    return all(word in hay for word in fold(query).split())
