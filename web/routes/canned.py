"""Canned responses over HTTP: agents list them (the composer's `/` picker), admins
manage them (`/canned` page and the write API)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from inbox.canned import canned_out, create_canned, delete_canned, list_canned, parse_canned, update_canned
from inbox.errors import BadInput
from web.auth import CONVERSATION_ROLES, csrf_token, identify, require
from web.http import json_object, optional_int, runtime
from web.templating import templates

MAX_LIMIT = 200


def _canned_id(request: Request) -> int:
    value = optional_int(request.path_params.get("id"), "id")
    if value is None:
        raise BadInput("id is required")
    return value


async def list_responses(request: Request) -> Response:
    """`GET /api/v1/canned?q=`: responses whose shortcut, title or text contain q."""
    await require(request, *CONVERSATION_ROLES)
    limit = optional_int(request.query_params.get("limit"), "limit") or 50
    if not 1 <= limit <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}")
    async with runtime(request).sessions() as session:
        rows = await list_canned(session, q=request.query_params.get("q"), limit=limit)
    return JSONResponse({"items": [canned_out(r) for r in rows]})


async def create_response(request: Request) -> Response:
    await require(request, "admin")
    fields = parse_canned(await json_object(request))
    row = await create_canned(runtime(request), **fields)
    return JSONResponse(row, status_code=201)


async def update_response(request: Request) -> Response:
    """Change the fields sent; the others stay."""
    await require(request, "admin")
    fields = parse_canned(await json_object(request), partial=True)
    row = await update_canned(runtime(request), canned_id=_canned_id(request), fields=fields)
    return JSONResponse(row)


async def delete_response(request: Request) -> Response:
    await require(request, "admin")
    await delete_canned(runtime(request), canned_id=_canned_id(request))
    return Response(status_code=204)


async def canned_page(request: Request) -> Response:
    caller = await identify(request)
    if caller is None:
        return RedirectResponse("/login", status_code=303)
    allowed = caller.role == "admin"
    return templates.TemplateResponse(request, "canned.html", {
        "csrf": csrf_token(request), "agent": caller, "allowed": allowed},
        status_code=200 if allowed else 403)


routes = [
    Route("/canned", canned_page, methods=["GET"]),
    Route("/api/v1/canned", list_responses, methods=["GET"]),
    Route("/api/v1/canned", create_response, methods=["POST"]),
    Route("/api/v1/canned/{id}", update_response, methods=["PUT"]),
    Route("/api/v1/canned/{id}", delete_response, methods=["DELETE"]),
]
