"""REST API `/api/v1`: conversations, messages, contacts, agents, events, files."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inbox import pipeline, store
from inbox import search as search_clauses
from inbox.agents import create_agent
from inbox.errors import BadInput, Conflict, NotFound
from inbox.merge import live_contact
from inbox.models import Agent, Contact, Conversation, StoredFile
from inbox.schemas import agent_out, contact_out, conversation_out, message_out
from inbox.types import CHANNELS, TemplateRef
from web.auth import ALL_ROLES, CONVERSATION_ROLES, require
from web.http import json_object, optional_int, runtime
from web.routes.media import file_response

MAX_PAGE = 200


def _cursor_encode(conv: Conversation) -> str:
    raw = f"{conv.last_activity_at.isoformat()}|{conv.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _cursor_decode(cursor: str) -> tuple[datetime, int]:
    try:
        at, cid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), int(cid)
    except Exception:
        raise BadInput("cursor is not one this API gave out") from None


def _limit(request: Request, default: int = 50) -> int:
    value = optional_int(request.query_params.get("limit"), "limit")
    if value is None:  # not `or default`: limit=0 must be refused, not read as 50
        value = default
    if not 1 <= value <= MAX_PAGE:
        raise BadInput(f"limit must be between 1 and {MAX_PAGE}")
    return value


async def list_conversations(request: Request) -> Response:
    caller = await require(request, *CONVERSATION_ROLES)
    rt = runtime(request)
    q = request.query_params
    status = q.get("status") or None
    if status and status not in pipeline.STATUSES:
        raise BadInput(f"status must be one of {', '.join(pipeline.STATUSES)}")
    handled_by = q.get("handled_by") or None
    if handled_by and handled_by not in ("bot", "human"):
        raise BadInput("handled_by must be bot or human")
    channel = q.get("channel") or None
    if channel and channel not in CHANNELS:
        # An empty list would read as "no conversations on fax" rather than "no such channel".
        raise BadInput(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
    assignee = q.get("assignee") or None
    assignee_id, unassigned = None, False
    if assignee == "me":
        assignee_id = caller.id
    elif assignee in ("none", "unassigned"):
        unassigned = True
    elif assignee:
        assignee_id = optional_int(assignee, "assignee")
    before = _cursor_decode(q["cursor"]) if q.get("cursor") else None
    limit = _limit(request)
    async with rt.sessions() as session:
        convs = await store.list_conversations(
            session, status=status, assignee_id=assignee_id, unassigned=unassigned,
            channel=channel, handled_by=handled_by,
            contact_id=optional_int(q.get("contact_id"), "contact_id"),
            search=(q.get("q") or "").strip() or None, before=before, limit=limit + 1)
        page = convs[:limit]
        ids = [c.id or 0 for c in page]
        last = await store.last_messages(session, conversation_ids=ids)
        names = await store.contact_names(session, contact_ids=[c.contact_id for c in page])
    items = [conversation_out(c, contact_name=names.get(c.contact_id), last_message=last.get(c.id or 0))
             for c in page]
    next_cursor = _cursor_encode(page[-1]) if len(convs) > limit else None
    return JSONResponse({"items": items, "next_cursor": next_cursor})


async def _conversation(session: Any, conversation_id: int) -> Conversation:
    conv = await session.get(Conversation, conversation_id)
    if conv is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    assert isinstance(conv, Conversation)
    return conv


def _path_id(request: Request, name: str = "id") -> int:
    value = optional_int(request.path_params.get(name), name)
    if value is None:
        raise BadInput(f"{name} is required")
    return value


async def get_conversation(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    rt = runtime(request)
    cid = _path_id(request)
    async with rt.sessions() as session:
        conv = await _conversation(session, cid)
        contact = await session.get(Contact, conv.contact_id)
        identities = await store.identities_of(session, contact_id=conv.contact_id)
        messages = await store.list_messages(session, conversation_id=cid, limit=_limit(request, 100))
    return JSONResponse({
        "conversation": conversation_out(conv, contact_name=contact.name if contact else None),
        "contact": contact_out(contact, identities) if contact else None,
        "messages": [message_out(m) for m in messages],
        "has_more": bool(messages) and len(messages) == _limit(request, 100),
    })


async def list_messages(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    rt = runtime(request)
    cid = _path_id(request)
    before = optional_int(request.query_params.get("before"), "before")
    limit = _limit(request, 100)
    async with rt.sessions() as session:
        await _conversation(session, cid)
        messages = await store.list_messages(session, conversation_id=cid, before_id=before, limit=limit)
    return JSONResponse({"items": [message_out(m) for m in messages],
                         "has_more": len(messages) == limit})


def _template(data: dict[str, Any]) -> TemplateRef | None:
    raw = data.get("template")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise BadInput('"template" must be an object with a "name"')
    variables = raw.get("variables") or {}
    if not isinstance(variables, dict):
        raise BadInput('"template.variables" must be an object')
    language = raw.get("language")
    return TemplateRef(name=raw["name"], language=language if isinstance(language, str) else None,
                       variables={str(k): str(v) for k, v in variables.items()})


MAX_ATTACHMENTS = 10  # WhatsApp and MMS take one media per message; Twilio up to 10


def _attachments(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Media to send by URL (providers fetch them): `[{"url", "content_type", "filename"?}]`."""
    raw = data.get("attachments")
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_ATTACHMENTS:
        raise BadInput(f'"attachments" must be a list of at most {MAX_ATTACHMENTS} objects')
    items = []
    for n, item in enumerate(raw):
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") \
                or not urlsplit(url).hostname:
            raise BadInput(f"attachment {n}: needs an http(s) \"url\" the provider can fetch")
        content_type = item.get("content_type") or "application/octet-stream"
        filename = item.get("filename")
        if not isinstance(content_type, str) or "/" not in content_type:
            raise BadInput(f'attachment {n}: "content_type" must be a MIME type like image/jpeg')
        if filename is not None and not isinstance(filename, str):
            raise BadInput(f'attachment {n}: "filename" must be a string')
        items.append({"url": url, "content_type": content_type, "filename": filename})
    return items


async def post_message(request: Request) -> Response:
    caller = await require(request, *CONVERSATION_ROLES)
    rt = runtime(request)
    cid = _path_id(request)
    data = await json_object(request)
    text = data.get("text", "")
    if not isinstance(text, str):
        raise BadInput('"text" must be a string')
    private = data.get("private", False)
    if not isinstance(private, bool):
        raise BadInput('"private" must be true or false')
    try:
        message = await pipeline.reply(rt, conversation_id=cid, text=text, author_kind="agent",
                                       agent_id=caller.id, private=private, template=_template(data),
                                       attachments=_attachments(data))
    except Conflict as exc:
        if exc.extra.get("reason") != "whatsapp_window_closed":
            raise
        # Offer what may go instead: the approved templates (INBOX_WHATSAPP_TEMPLATES).
        raise Conflict(exc.detail, extra={
            **exc.extra, "templates": list(rt.settings.whatsapp_templates)}) from exc
    return JSONResponse(message, status_code=201)


async def post_note(request: Request) -> Response:
    caller = await require(request, *CONVERSATION_ROLES)
    rt = runtime(request)
    data = await json_object(request)
    text = data.get("text", "")
    if not isinstance(text, str):
        raise BadInput('"text" must be a string')
    message = await pipeline.reply(rt, conversation_id=_path_id(request), text=text,
                                   agent_id=caller.id, private=True)
    return JSONResponse(message, status_code=201)


async def post_assign(request: Request) -> Response:
    caller = await require(request, *CONVERSATION_ROLES)
    data = await json_object(request)
    target = data.get("agent_id", "me")
    agent_id = caller.id if target == "me" else (None if target is None else optional_int(target, "agent_id"))
    summary = await pipeline.assign(runtime(request), conversation_id=_path_id(request),
                                    agent_id=agent_id, by=caller.name)
    return JSONResponse(summary)


async def post_status(request: Request) -> Response:
    caller = await require(request, *CONVERSATION_ROLES)
    data = await json_object(request)
    status = data.get("status")
    if not isinstance(status, str):
        raise BadInput('"status" is required')
    until = None
    if data.get("snoozed_until"):
        try:
            until = datetime.fromisoformat(str(data["snoozed_until"]).replace("Z", "+00:00"))
        except ValueError:
            raise BadInput('"snoozed_until" must be an ISO 8601 time') from None
        if until.tzinfo is None:
            raise BadInput('"snoozed_until" needs a time zone (e.g. ...Z)')
    summary = await pipeline.set_status(runtime(request), conversation_id=_path_id(request),
                                        status=status, snoozed_until=until, by=caller.name)
    return JSONResponse(summary)


async def post_take_over(request: Request) -> Response:
    caller = await require(request, *CONVERSATION_ROLES)
    summary = await pipeline.take_over(runtime(request), conversation_id=_path_id(request),
                                       agent_id=caller.id, by=caller.name)
    return JSONResponse(summary)


async def post_read(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    await pipeline.mark_read(runtime(request), conversation_id=_path_id(request))
    return JSONResponse({"ok": True})


async def post_split(request: Request) -> Response:
    caller = await require(request, *CONVERSATION_ROLES)
    summary = await pipeline.split_message(runtime(request), message_id=_path_id(request),
                                           by=caller.name)
    return JSONResponse(summary, status_code=201)


async def list_contacts(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    rt = runtime(request)
    search = (request.query_params.get("q") or "").strip().lower()
    limit = _limit(request)
    from sqlalchemy import desc, select

    async with rt.sessions() as session:
        query = select(Contact).where(Contact.merged_into_id.is_(None))  # type: ignore[union-attr]
        if search:
            contacts = await search_clauses.newest_contacts(session, query, search=search, limit=limit)
        else:
            result = await session.exec(query.order_by(desc(Contact.id)).limit(limit))  # type: ignore[call-overload]
            contacts = list(result.scalars().all())
        items = [contact_out(c, await store.identities_of(session, contact_id=c.id or 0)) for c in contacts]
    return JSONResponse({"items": items})


async def get_contact(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    rt = runtime(request)
    contact_id = _path_id(request)
    async with rt.sessions() as session:
        # A merged contact answers with the live one that now owns its addresses.
        contact = await live_contact(session, contact_id=contact_id)
        if contact is None:
            raise NotFound(f"contact {contact_id} does not exist")
        identities = await store.identities_of(session, contact_id=contact.id or 0)
        convs = await store.conversations_of_contact(session, contact_id=contact.id or 0)
    data = contact_out(contact, identities)
    if contact.id != contact_id:
        data["merged_into"] = contact.id
    data["conversations"] = [conversation_out(c, contact_name=contact.name) for c in convs]
    return JSONResponse(data)


async def list_agents(request: Request) -> Response:
    await require(request, *ALL_ROLES)
    rt = runtime(request)
    from sqlalchemy import select

    async with rt.sessions() as session:
        result = await session.exec(select(Agent).order_by(Agent.id))  # type: ignore[call-overload]
        agents = [agent_out(a) for a in result.scalars().all()]
    return JSONResponse({"items": agents})


async def post_agent(request: Request) -> Response:
    await require(request, "admin")
    data = await json_object(request)
    for key in ("email", "name", "role"):
        if not isinstance(data.get(key), str):
            raise BadInput(f'"{key}" is required')
    password = data.get("password")
    if password is not None and (not isinstance(password, str) or len(password) < 8):
        raise BadInput('"password" must be at least 8 characters')
    agent, token = await create_agent(runtime(request), email=data["email"], name=data["name"],
                                      role=data["role"], password=password)
    return JSONResponse({"agent": agent_out(agent), "token": token}, status_code=201)


async def me(request: Request) -> Response:
    caller = await require(request, *ALL_ROLES)
    return JSONResponse({"id": caller.id, "name": caller.name, "email": caller.email,
                         "role": caller.role})


async def list_events(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    since = optional_int(request.query_params.get("since"), "since") or 0
    async with runtime(request).sessions() as session:
        events = await store.events_after(session, seq=since, limit=_limit(request, 200))
    return JSONResponse({"items": [e.to_json() for e in events]})


async def get_file(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    file_id = _path_id(request)
    async with runtime(request).sessions() as session:
        blob = await session.get(StoredFile, file_id)
    if blob is None:
        raise NotFound(f"file {file_id} does not exist")
    return file_response(blob.data, content_type=blob.content_type,
                         filename=blob.filename or f"attachment-{file_id}")


async def post_retry(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    message = await pipeline.retry_message(runtime(request), message_id=_path_id(request))
    return JSONResponse(message)


routes = [
    Route("/api/v1/conversations", list_conversations, methods=["GET"]),
    Route("/api/v1/messages/{id}/retry", post_retry, methods=["POST"]),
    Route("/api/v1/conversations/{id}", get_conversation, methods=["GET"]),
    Route("/api/v1/conversations/{id}/messages", list_messages, methods=["GET"]),
    Route("/api/v1/conversations/{id}/messages", post_message, methods=["POST"]),
    Route("/api/v1/conversations/{id}/notes", post_note, methods=["POST"]),
    Route("/api/v1/conversations/{id}/assign", post_assign, methods=["POST"]),
    Route("/api/v1/conversations/{id}/status", post_status, methods=["POST"]),
    Route("/api/v1/conversations/{id}/take_over", post_take_over, methods=["POST"]),
    Route("/api/v1/conversations/{id}/read", post_read, methods=["POST"]),
    Route("/api/v1/messages/{id}/split", post_split, methods=["POST"]),
    Route("/api/v1/contacts", list_contacts, methods=["GET"]),
    Route("/api/v1/contacts/{id}", get_contact, methods=["GET"]),
    Route("/api/v1/agents", list_agents, methods=["GET"]),
    Route("/api/v1/agents", post_agent, methods=["POST"]),
    Route("/api/v1/me", me, methods=["GET"]),
    Route("/api/v1/events", list_events, methods=["GET"]),
    Route("/api/v1/files/{id}", get_file, methods=["GET"]),
]
