"""Maps the exception tree to HTTP in one place: `{"error": code, "detail": ...}`."""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from inbox.errors import InboxError

log = logging.getLogger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "not_authenticated", 403: "forbidden",
               404: "not_found", 405: "method_not_allowed", 413: "too_large",
               429: "rate_limited"}


def error_response(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    """A JSON error body with the right status."""
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status)


async def inbox_error(request: Request, exc: Exception) -> Response:
    """Our own errors: their status and code."""
    assert isinstance(exc, InboxError)
    return error_response(exc.status, exc.code, exc.detail, **exc.extra)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors (404, 405) in the same JSON shape."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"),
                          str(exc.detail))


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """The database is unreachable: 503, so providers retry the webhook later."""
    log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "unavailable", "the store is unreachable; retry later",
                          retry_after=5)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (OperationalError, InterfaceError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and isinstance(cause, (OSError, TimeoutError)) \
        and isinstance(exc, DBAPIError)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """Anything else is our bug: log it, say nothing internal (a lost store is a 503)."""
    if _is_unavailable(exc):
        response = await store_unavailable(request, exc)
        response.headers["Retry-After"] = "5"
        return response
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "something went wrong on our side")


async def bad_json(request: Request, exc: Exception) -> Response:
    """A body that is not JSON."""
    return error_response(400, "bad_json", f"the body is not valid JSON: {exc}")


HANDLERS: dict[Any, Any] = {
    InboxError: inbox_error,
    HTTPException: http_error,
    json.JSONDecodeError: bad_json,
    Exception: unexpected_error,
}
