"""Request helpers shared by the routes: bounded body reading, JSON, public URLs."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request

from inbox.errors import BadInput, TooLarge
from inbox.runtime import Runtime
from inbox.types import WebhookRequest


def runtime(request: Request) -> Runtime:
    """The app's runtime (built in the lifespan)."""
    rt: Runtime = request.app.state.runtime
    return rt


async def read_body(request: Request, *, limit: int) -> bytes:
    """The request body, refusing with `TooLarge` past `limit` bytes (without buffering it)."""
    declared = request.headers.get("content-length")
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
        chunks.append(chunk)
    return b"".join(chunks)


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


def public_url(request: Request, rt: Runtime) -> str:
    """The URL the provider called, as it signed it: INBOX_PUBLIC_URL + path + query."""
    url = rt.settings.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


async def webhook_request(request: Request, rt: Runtime, *, limit: int) -> WebhookRequest:
    """The framework-free view of a provider's request that connectors read."""
    body = await read_body(request, limit=limit)
    headers = {k.lower(): v for k, v in request.headers.items()}
    form: dict[str, list[str]] = {}
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadInput("the form body is not UTF-8") from None
    return WebhookRequest(
        method=request.method,
        url=public_url(request, rt),
        headers=headers,
        body=body,
        query=dict(request.query_params),
        form=form,
    )


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
