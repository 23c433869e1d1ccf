"""Attachments an agent can open, whatever holds the bytes: our store (email), Meta's
Graph API (`meta-media:<id>`), or a provider URL that needs our credentials (Twilio).

`GET /api/v1/messages/{id}/attachments/{n}` hides where the file lives; the browser
never sees a provider secret.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.errors import ConnectorError, NotFound
from inbox.models import Conversation, Message, StoredFile
from web.auth import CONVERSATION_ROLES, require
from web.http import optional_int, runtime

MEDIA_PREFIX = "meta-media:"
MAX_MEDIA = 100_000_000  # WhatsApp's largest documents are 100 MB


def file_response(data: bytes, *, content_type: str, filename: str) -> Response:
    """Bytes as a download that can never run as a page of ours (sandboxed, nosniff)."""
    safe_type = "application/octet-stream" if "html" in content_type or "xml" in content_type \
        else content_type
    disposition = "inline" if safe_type.startswith("image/") else "attachment"
    return Response(data, media_type=safe_type, headers={
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename.replace(chr(34), ''))}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, max-age=3600",
    })


async def attachment(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    rt = runtime(request)
    message_id = optional_int(request.path_params.get("id"), "id") or 0
    index = optional_int(request.path_params.get("n"), "n") or 0
    async with rt.sessions() as session:
        message = await session.get(Message, message_id)
        if message is None or not 0 <= index < len(message.attachments):
            raise NotFound(f"message {message_id} has no attachment {index}")
        att: dict[str, Any] = message.attachments[index]
        conv = await session.get(Conversation, message.conversation_id)
        blob = await session.get(StoredFile, att["file_id"]) if att.get("file_id") else None
    filename = att.get("filename") or f"attachment-{message_id}-{index}"
    content_type = att.get("content_type") or "application/octet-stream"
    if blob is not None:
        return file_response(blob.data, content_type=blob.content_type, filename=filename)
    url = att.get("url") or ""
    if url.startswith(MEDIA_PREFIX):
        connector: Any = rt.connector("meta")
        data, fetched_type = await connector.fetch_media(url)
        return file_response(data, content_type=fetched_type or content_type, filename=filename)
    if urlsplit(url).scheme not in ("http", "https"):
        raise NotFound("this attachment has no downloadable copy")
    provider = rt.connectors.get(conv.provider) if conv is not None else None
    auth = getattr(provider, "media_auth", lambda _u: None)(url) if provider else None
    if auth is None:
        return RedirectResponse(url, status_code=302)
    try:
        async with httpx.AsyncClient(timeout=30, follow_redirects=True) as client:
            resp = await client.get(url, auth=auth)
    except httpx.HTTPError as exc:
        raise ConnectorError(f"could not download the media: {exc}") from exc
    if resp.status_code == 404:
        raise NotFound("the provider no longer has this media")
    if resp.status_code >= 400 or len(resp.content) > MAX_MEDIA:
        raise ConnectorError(f"the provider answered {resp.status_code} for this media")
    return file_response(resp.content, content_type=resp.headers.get("content-type", content_type),
                         filename=filename)


routes = [
    Route("/api/v1/messages/{id}/attachments/{n}", attachment, methods=["GET"]),
]
