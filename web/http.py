"""Request helpers shared by the routes: bounded body reading, JSON, webhook requests."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from inbox.errors import BadInput, TooLarge
from inbox.forms import parse_form
from inbox.runtime import Runtime
from inbox.types import WebhookRequest


def runtime(request: Request) -> Runtime:
    """The app's runtime (built in the lifespan)."""
    rt: Runtime = request.app.state.runtime
    return rt


async def read_body(request: Request, *, limit: int) -> bytes:
    """The request body, refusing with `TooLarge` past `limit` bytes (without buffering it)."""
    return await _read(request, request.headers.get("content-length"), limit=limit)


async def _read(request: Request, declared: str | None, *, limit: int) -> bytes:
    if declared is not None:
        try:
            if int(declared) > limit:
                raise TooLarge(f"the body is larger than {limit} bytes")
        except ValueError:
            raise BadInput("Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the body is larger than {limit} bytes")
        if chunk:
            chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def json_object(request: Request, *, limit: int = 256_000) -> dict[str, Any]:
    """The body as a JSON object; `BadInput` for anything else."""
    body = await read_body(request, limit=limit)
    if not body.strip():
        raise BadInput("the body is empty; expected a JSON object")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput("expected a JSON object")
    return data


async def webhook_request(request: Request, rt: Runtime, *, limit: int) -> WebhookRequest:
    """The framework-free view of a provider's request that connectors read; its `url`
    is the URL the provider called, as it signed it: INBOX_PUBLIC_URL + path + query.

    Read straight from the ASGI scope (the busiest path of all: Starlette's URL and
    Headers objects cost more than the connector's own work), with the same results.
    """
    scope = request.scope
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    body = await _read(request, headers.get("content-length"), limit=limit)
    form: dict[str, list[str]] = {}
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            form = parse_form(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadInput("the form body is not UTF-8") from None
    # As starlette.datastructures.URL spells the path of a scope.
    url = rt.settings.public_url + (
        scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C"))
    query_string: bytes = scope.get("query_string", b"")
    query: dict[str, str] = {}
    if query_string:
        url += "?" + query_string.decode()
        query = dict(request.query_params)
    return WebhookRequest(method=scope["method"], url=url, headers=headers, body=body,
                          query=query, form=form)


def optional_int(value: Any, name: str) -> int | None:
    """An integer parameter or None; `BadInput` naming the parameter otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, (bool, float)):
        # int(True) == 1 and int(1.9) == 1: a JSON true or 1.9 would silently name record 1.
        raise BadInput(f"{name} must be a whole number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name} must be a whole number, got {value!r}") from None
