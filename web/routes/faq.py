"""The FAQ over HTTP: entries (CRUD, preview), the matcher ("try a message"), the
unanswered questions, and the editor page `/faq`.

Editing is for admins and FAQ editors; agents may try the matcher. Every handler goes
through the process's `FaqService` (`faq.service.service_for`), so a save here updates
the same matcher index the auto-answer responder uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from faq import store
from faq.entries import MAX_ALTERNATES, entry_out, matches_search, validate_entry
from faq.normalise import fold
from faq.policy import Situation, decide, reason_text
from faq.render import SAMPLE_ORDER, personalise, render, uses_order
from faq.service import FaqService, facts_for, service_for
from faq.store import FaqEntry, UnansweredQuestion
from faq.unanswered import group_texts
from inbox.errors import BadInput, NotFound
from inbox.runtime import Runtime
from inbox.types import CHANNELS
from web.auth import FAQ_ROLES, csrf_token, identify, require
from web.http import json_object, optional_int, runtime
from web.templating import templates

MATCH_ROLES = (*FAQ_ROLES, "agent")
MAX_TEXT = 5000
# Open unanswered questions grouped per request, newest first, as long as they say at
# most MAX_QUESTION_KEYS different things (the grouping's work grows with the square of
# those: 400 different questions ~90 ms of CPU, 2,000 ~2 s); older ones wait until the
# editor has dealt with newer ones.
MAX_UNANSWERED = 2000
MAX_QUESTION_KEYS = 400


def _service(request: Request) -> tuple[Runtime, FaqService]:
    rt = runtime(request)
    return rt, service_for(rt)


def _entry_id(request: Request) -> int:
    value = optional_int(request.path_params.get("id"), "id")
    if value is None:
        raise BadInput("id is required")
    return value


def _text_field(data: dict[str, Any], key: str = "text") -> str:
    text = data.get(key)
    if not isinstance(text, str) or not text.strip():
        raise BadInput(f'"{key}" must be a non-empty string')
    if len(text) > MAX_TEXT:
        raise BadInput(f'"{key}" is at most {MAX_TEXT} characters')
    return text


def _channel(data: dict[str, Any], default: str = "webchat") -> str:
    channel = data.get("channel", default)
    if channel not in CHANNELS:
        raise BadInput(f'"channel" must be one of {", ".join(CHANNELS)}')
    return str(channel)


# ---------------------------------------------------------------------------- entries


async def list_faqs(request: Request) -> Response:
    await require(request, *FAQ_ROLES)
    rt = runtime(request)
    query = (request.query_params.get("q") or "").strip()
    tag = (request.query_params.get("tag") or "").strip().lower()
    async with rt.sessions() as session:
        entries = await store.list_entries(session)
    items = [entry_out(e) for e in entries
             if (not query or matches_search(e, query)) and (not tag or tag in e.tags)]
    return JSONResponse({"items": items})


async def create_faq(request: Request) -> Response:
    await require(request, *FAQ_ROLES)
    rt, service = _service(request)
    values = validate_entry(await json_object(request))
    entry = await service.create(rt, values)
    return JSONResponse(entry_out(entry), status_code=201)


async def get_faq(request: Request) -> Response:
    await require(request, *FAQ_ROLES)
    entry_id = _entry_id(request)
    async with runtime(request).sessions() as session:
        entry = await store.get_entry(session, entry_id=entry_id)
    if entry is None:
        raise NotFound(f"FAQ entry {entry_id} does not exist")
    return JSONResponse(entry_out(entry))


async def update_faq(request: Request) -> Response:
    """Change the fields sent (the others stay): `{"enabled": false}` disables."""
    await require(request, *FAQ_ROLES)
    rt, service = _service(request)
    values = validate_entry(await json_object(request), partial=True)
    entry = await service.update(rt, _entry_id(request), values)
    return JSONResponse(entry_out(entry))


async def delete_faq(request: Request) -> Response:
    await require(request, *FAQ_ROLES)
    rt, service = _service(request)
    await service.delete(rt, _entry_id(request))
    return Response(status_code=204)


def _preview(answer: str, fallback: str | None, channel: str) -> dict[str, Any]:
    personal = uses_order(answer)
    text = personalise(answer, order=SAMPLE_ORDER if personal else None)
    shown = render(text, channel) if text is not None else None
    out: dict[str, Any] = {
        "channel": channel, "personal": personal,
        "sample_order": SAMPLE_ORDER if personal else None,
        "text": shown.text if shown else None, "html": shown.html if shown else None,
        "fallback": None,
    }
    if personal and fallback:
        plain = personalise(fallback, order=None)
        if plain is not None:
            rendered = render(plain, channel)
            out["fallback"] = {"text": rendered.text, "html": rendered.html}
    return out


async def preview_faq(request: Request) -> Response:
    """An entry's answer as `channel` shows it; `answer`/`answer_fallback` in the body
    preview unsaved edits. Personal answers are filled from a sample order."""
    await require(request, *FAQ_ROLES)
    data = await json_object(request)
    channel = _channel(data)
    entry_id = request.path_params.get("id")
    answer, fallback = data.get("answer"), data.get("answer_fallback")
    if entry_id is not None:
        async with runtime(request).sessions() as session:
            entry = await store.get_entry(session, entry_id=_entry_id(request))
        if entry is None:
            raise NotFound(f"FAQ entry {entry_id} does not exist")
        answer = entry.answer if answer is None else answer
        fallback = entry.answer_fallback if fallback is None else fallback
    checked = validate_entry({"question": "preview", "answer": answer,
                              "answer_fallback": fallback}, partial=True)
    return JSONResponse(_preview(checked["answer"], checked.get("answer_fallback"), channel))


# ---------------------------------------------------------------------------- matching


def _brief(entry: FaqEntry) -> dict[str, Any]:
    return {"id": entry.id, "external_id": entry.external_id, "question": entry.question,
            "answer": entry.answer}


async def match(request: Request) -> Response:
    """The best entry for a text, its confidence, and whether the bot would answer it
    in a bot-handled conversation (web chat unless `channel` says otherwise)."""
    await require(request, *MATCH_ROLES)
    rt, service = _service(request)
    data = await json_object(request)
    text = _text_field(data)
    channel = _channel(data)
    result = await service.match(rt, text, limit=5)
    ids = [int(c.id) for c in result.candidates]
    async with rt.sessions() as session:
        entries = {e.id: e for e in [await store.get_entry(session, entry_id=i) for i in ids] if e}
    top = entries.get(int(result.entry_id)) if result.entry_id is not None else None
    decision = decide(Situation(text=text, channel=channel), result,
                      facts_for(top) if top else None, service.policy)
    return JSONResponse({
        "entry": _brief(top) if top else None,
        "confidence": round(result.confidence, 4),
        "would_answer": decision.action == "answer",
        "decision": decision.action,
        "reason": decision.reason,
        "reason_text": reason_text(decision.reason),
        "threshold": service.policy.threshold,
        # A personal answer needs the customer's order (else its fallback, else a person).
        "personal": bool(top and uses_order(top.answer)),
        "candidates": [
            {"id": int(c.id), "question": entries[int(c.id)].question,
             "confidence": round(c.confidence, 4)}
            for c in result.candidates if int(c.id) in entries
        ],
    })


# ---------------------------------------------------------------------------- unanswered


def _question_out(q: UnansweredQuestion) -> dict[str, Any]:
    return {"id": q.id, "text": q.text, "reason": q.reason, "message_id": q.message_id,
            "conversation_id": q.conversation_id, "created_at": q.created_at.isoformat()}


async def _groups(rt: Runtime) -> list[list[UnansweredQuestion]]:
    async with rt.sessions() as session:
        questions = await store.open_unanswered(session, limit=MAX_UNANSWERED)
    # Up to ~100 ms of CPU: off the event loop, so sockets keep flowing.
    groups = await asyncio.to_thread(group_texts, [q.text for q in questions],
                                     max_keys=MAX_QUESTION_KEYS)
    return [[questions[i] for i in g] for g in groups]


async def _group_of(rt: Runtime, question_id: int) -> list[UnansweredQuestion]:
    for group in await _groups(rt):
        if any(q.id == question_id for q in group):
            return group
    raise NotFound(f"unanswered question {question_id} does not exist or is already covered")


async def list_unanswered(request: Request) -> Response:
    """Open unanswered questions grouped by similarity, biggest group first; each group
    is named by its newest question's id and says which entry the matcher suggests."""
    await require(request, *FAQ_ROLES)
    rt, service = _service(request)
    limit = optional_int(request.query_params.get("limit"), "limit") or 50
    groups = (await _groups(rt))[:max(1, min(limit, 500))]
    results = [await service.match(rt, group[0].text, limit=1) for group in groups]
    async with rt.sessions() as session:  # one read for every suggestion, not one per group
        entries = await store.entries_by_id(session, entry_ids=[
            int(r.entry_id) for r in results if r.entry_id is not None])
    out = []
    for group, result in zip(groups, results, strict=True):
        head = group[0]
        suggestion = None
        entry = entries.get(int(result.entry_id)) if result.entry_id is not None else None
        if entry is not None:
            suggestion = {"id": entry.id, "question": entry.question,
                          "confidence": round(result.confidence, 4)}
        reasons: dict[str, int] = {}
        for q in group:
            reasons[q.reason] = reasons.get(q.reason, 0) + 1
        out.append({"id": head.id, "text": head.text, "count": len(group), "reasons": reasons,
                    "suggested_entry": suggestion,
                    "questions": [_question_out(q) for q in group]})
    return JSONResponse({"groups": out})


def _distinct(texts: Sequence[str], *, skip: Sequence[str] = ()) -> list[str]:
    seen = {fold(t) for t in skip}
    out = []
    for text in texts:
        text = " ".join(text.split())[:500]
        if text and fold(text) not in seen:
            seen.add(fold(text))
            out.append(text)
    return out


async def create_from_unanswered(request: Request) -> Response:
    """A new entry from a group: its newest question is the question and the others the
    alternates, unless the body says otherwise; `answer` is required."""
    await require(request, *FAQ_ROLES)
    rt, service = _service(request)
    group = await _group_of(rt, _entry_id(request))
    data = await json_object(request)
    texts = _distinct([q.text for q in group])
    data.setdefault("question", texts[0] if texts else "")
    if "alternates" not in data:
        data["alternates"] = _distinct(texts, skip=[str(data["question"])])[:MAX_ALTERNATES]
    values = validate_entry(data)
    entry = await service.create(rt, values, resolve=[q.id or 0 for q in group])
    return JSONResponse(entry_out(entry), status_code=201)


async def add_alternate_from_unanswered(request: Request) -> Response:
    """The group's questions become alternates of entry `entry_id`."""
    await require(request, *FAQ_ROLES)
    rt, service = _service(request)
    group = await _group_of(rt, _entry_id(request))
    data = await json_object(request)
    entry_id = optional_int(data.get("entry_id"), "entry_id")
    if entry_id is None:
        raise BadInput('"entry_id" is required')
    async with rt.sessions() as session:
        entry = await store.get_entry(session, entry_id=entry_id)
    if entry is None:
        raise NotFound(f"FAQ entry {entry_id} does not exist")
    added = _distinct([q.text for q in group], skip=[entry.question, *entry.alternates])
    values = validate_entry({"alternates": [*entry.alternates, *added]}, partial=True)
    entry = await service.update(rt, entry_id, values, resolve=[q.id or 0 for q in group])
    return JSONResponse({**entry_out(entry), "added": added})


async def dismiss_unanswered(request: Request) -> Response:
    """Forget a group (questions no entry should cover)."""
    await require(request, *FAQ_ROLES)
    rt = runtime(request)
    group = await _group_of(rt, _entry_id(request))
    async with rt.sessions() as session, session.begin():
        await store.delete_unanswered(session, question_ids=[q.id or 0 for q in group])
    return Response(status_code=204)


# ---------------------------------------------------------------------------- page


async def faq_page(request: Request) -> Response:
    caller = await identify(request)
    if caller is None:
        return RedirectResponse("/login", status_code=303)
    allowed = caller.role in FAQ_ROLES
    return templates.TemplateResponse(request, "faq.html", {
        "csrf": csrf_token(request), "agent": caller, "allowed": allowed,
        "channels": CHANNELS}, status_code=200 if allowed else 403)


routes = [
    Route("/faq", faq_page, methods=["GET"]),
    Route("/api/v1/faqs", list_faqs, methods=["GET"]),
    Route("/api/v1/faqs", create_faq, methods=["POST"]),
    Route("/api/v1/faqs/{id}", get_faq, methods=["GET"]),
    Route("/api/v1/faqs/{id}", update_faq, methods=["PUT"]),
    Route("/api/v1/faqs/{id}", delete_faq, methods=["DELETE"]),
    Route("/api/v1/faqs/{id}/preview", preview_faq, methods=["POST"]),
    Route("/api/v1/faq/preview", preview_faq, methods=["POST"]),
    Route("/api/v1/faq/match", match, methods=["POST"]),
    Route("/api/v1/faq/unanswered", list_unanswered, methods=["GET"]),
    Route("/api/v1/faq/unanswered/{id}/create-entry", create_from_unanswered, methods=["POST"]),
    Route("/api/v1/faq/unanswered/{id}/add-alternate", add_alternate_from_unanswered,
          methods=["POST"]),
    Route("/api/v1/faq/unanswered/{id}", dismiss_unanswered, methods=["DELETE"]),
]
