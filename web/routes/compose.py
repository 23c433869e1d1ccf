"""What the composer shows before sending: SMS segment count, WhatsApp window state.

The web package is the composition root, so it may read the pure helpers of the
connectors directly; nothing here changes state.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.sms_segments import segment_info
from connectors.whatsapp_window import window_state
from inbox.errors import BadInput, NotFound
from inbox.models import Conversation
from web.auth import CONVERSATION_ROLES, require
from web.http import optional_int, runtime

MAX_TEXT = 10_000  # characters; far beyond any SMS an agent would send (Twilio caps at 1600)


async def segments(request: Request) -> Response:
    """`GET /api/v1/compose/segments?text=`: encoding, segment count and what still fits."""
    await require(request, *CONVERSATION_ROLES)
    text = request.query_params.get("text", "")
    if len(text) > MAX_TEXT:
        raise BadInput(f"text is at most {MAX_TEXT} characters here, got {len(text)}")
    info = segment_info(text)
    return JSONResponse({
        "encoding": info.encoding, "segments": info.segments, "characters": info.characters,
        "units": info.units, "per_segment": info.per_segment, "remaining": info.remaining,
    })


async def window(request: Request) -> Response:
    """`GET /api/v1/conversations/{id}/window`: may a free-form reply go out now?

    Only WhatsApp has a window; other channels answer `{"applies": false, "open": true}`.
    `templates` lists the approved WhatsApp templates an agent may send instead.
    """
    await require(request, *CONVERSATION_ROLES)
    cid = optional_int(request.path_params.get("id"), "id")
    async with runtime(request).sessions() as session:
        conv = await session.get(Conversation, cid)
    if conv is None:
        raise NotFound(f"conversation {cid} does not exist")
    if conv.channel != "whatsapp":
        return JSONResponse({"channel": conv.channel, "applies": False, "open": True,
                             "closes_at": None, "seconds_left": None, "templates": []})
    state = window_state(conv.last_customer_at)
    # What may go instead while closed: the approved templates (INBOX_WHATSAPP_TEMPLATES).
    templates = list(runtime(request).settings.whatsapp_templates)
    return JSONResponse({
        "channel": conv.channel, "applies": True, "open": state.open,
        "closes_at": state.closes_at.isoformat() if state.closes_at else None,
        "seconds_left": state.seconds_left,
        "templates": templates,
    })


routes = [
    Route("/api/v1/compose/segments", segments, methods=["GET"]),
    Route("/api/v1/conversations/{id}/window", window, methods=["GET"]),
]
