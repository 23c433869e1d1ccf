"""Contact merges over HTTP: suggested duplicates, merge, undo (agents and admins)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inbox.errors import BadInput
from inbox.merge import merge_contacts, suggest_duplicates, undo_merge
from web.auth import CONVERSATION_ROLES, require
from web.http import json_object, optional_int, runtime


def _path_id(request: Request) -> int:
    value = optional_int(request.path_params.get("id"), "id")
    if value is None:
        raise BadInput("id is required")
    return value


async def duplicates(request: Request) -> Response:
    """`GET /api/v1/contacts/{id}/duplicates`: `{"items": [{"contact", "reason"}]}`."""
    await require(request, *CONVERSATION_ROLES)
    async with runtime(request).sessions() as session:
        items = await suggest_duplicates(session, contact_id=_path_id(request))
    return JSONResponse({"items": items})


async def merge(request: Request) -> Response:
    """`POST /api/v1/contacts/{id}/merge {"into": target_id}`: 201 with the merge record."""
    caller = await require(request, *CONVERSATION_ROLES)
    data = await json_object(request)
    target = optional_int(data.get("into"), "into")
    if target is None:
        raise BadInput('"into" is required: the id of the contact to merge into')
    record = await merge_contacts(runtime(request), source_id=_path_id(request), target_id=target,
                                  by=caller.name)
    return JSONResponse(record, status_code=201)


async def undo(request: Request) -> Response:
    """`POST /api/v1/merges/{id}/undo`: the record, now undone (409 when it already was)."""
    caller = await require(request, *CONVERSATION_ROLES)
    record = await undo_merge(runtime(request), merge_id=_path_id(request), by=caller.name)
    return JSONResponse(record)


routes = [
    Route("/api/v1/contacts/{id}/duplicates", duplicates, methods=["GET"]),
    Route("/api/v1/contacts/{id}/merge", merge, methods=["POST"]),
    Route("/api/v1/merges/{id}/undo", undo, methods=["POST"]),
]
