"""Provider webhooks. Each verifies the signature, stores what it carries (committed)
and only then answers 200; responders and sending run after the response."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from inbox import pipeline
from inbox.errors import BadInput, RateLimited
from inbox.runtime import Runtime
from web.http import runtime, webhook_request
from web.ratelimit import KeyedLimiter

# Providers send small requests (Twilio < 64 KB of form fields; Meta's batches and
# raw mail with attachments are larger: mail gets the biggest cap).
FORM_LIMIT = 256_000
JSON_LIMIT = 3_000_000
MAIL_LIMIT = 30_000_000
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def _take(rt: Runtime, provider: str, request: Request, *, limit: int,
                messages: bool = True, statuses: bool = False) -> tuple[int, int]:
    limiter = rt.extras.get("webhook_limiter")
    if limiter is None:
        limiter = rt.extras["webhook_limiter"] = KeyedLimiter(
            capacity=rt.settings.webhook_burst, rate=rt.settings.webhook_rate)
    source = request.client.host if request.client else "unknown"
    if not limiter.allow(source):
        raise RateLimited(f"too many webhook requests from {source}; retry later")
    connector = rt.connector(provider)
    req = await webhook_request(request, rt, limit=limit)
    connector.verify(req)
    stored = updated = 0
    if messages:
        for inbound in connector.parse(req):
            await pipeline.ingest(rt, inbound)
            stored += 1
    if statuses:
        for update in connector.parse_status(req):
            await pipeline.record_status(rt, update)
            updated += 1
    return stored, updated


async def twilio_inbound(request: Request) -> Response:
    await _take(runtime(request), "twilio", request, limit=FORM_LIMIT)
    return Response(EMPTY_TWIML, media_type="text/xml")


async def twilio_status(request: Request) -> Response:
    await _take(runtime(request), "twilio", request, limit=FORM_LIMIT, messages=False, statuses=True)
    return Response(status_code=204)


async def whatsapp_verify(request: Request) -> Response:
    rt = runtime(request)
    connector = rt.connector("meta")
    challenge = connector.verify_challenge(dict(request.query_params))  # type: ignore[attr-defined]
    return PlainTextResponse(challenge)


async def whatsapp_inbound(request: Request) -> Response:
    stored, updated = await _take(runtime(request), "meta", request, limit=JSON_LIMIT,
                                  statuses=True)
    return JSONResponse({"stored": stored, "statuses": updated})


async def email_inbound(request: Request) -> Response:
    stored, updated = await _take(runtime(request), "email", request, limit=MAIL_LIMIT,
                                  statuses=True)
    if stored == 0 and updated == 0:
        raise BadInput("the body carried no mail")
    return JSONResponse({"stored": stored, "statuses": updated})


routes = [
    Route("/webhooks/twilio", twilio_inbound, methods=["POST"]),
    Route("/webhooks/twilio/status", twilio_status, methods=["POST"]),
    Route("/webhooks/whatsapp", whatsapp_verify, methods=["GET"]),
    Route("/webhooks/whatsapp", whatsapp_inbound, methods=["POST"]),
    Route("/webhooks/email", email_inbound, methods=["POST"]),
]
