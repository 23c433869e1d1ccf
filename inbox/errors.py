"""One exception tree for the whole product, mapped to HTTP in one place (web/errors.py).

    InboxError
    ├── BadInput            400  the request or file is malformed
    ├── NotAuthenticated    401
    ├── Forbidden           403  authenticated, but the role does not allow it
    ├── NotFound            404
    ├── Conflict            409  valid, but not now (e.g. WhatsApp window closed)
    ├── PolicyRefused       422  never allowed for this recipient (e.g. opted out)
    ├── TooLarge            413
    ├── RateLimited         429
    └── ConnectorError
        ├── SignatureInvalid    403  the provider's signature does not match
        ├── UnsupportedPayload  400  a request we cannot read
        └── SendFailed              the provider refused a message (retryable or not)
"""

from __future__ import annotations

from typing import Any


class InboxError(Exception):
    """Base of every error we raise on purpose; `code` is a stable machine name."""

    code = "inbox_error"
    status = 500

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class BadInput(InboxError):
    code = "bad_input"
    status = 400


class NotAuthenticated(InboxError):
    code = "not_authenticated"
    status = 401


class Forbidden(InboxError):
    code = "forbidden"
    status = 403


class NotFound(InboxError):
    code = "not_found"
    status = 404


class Conflict(InboxError):
    code = "conflict"
    status = 409


class PolicyRefused(InboxError):
    code = "refused"
    status = 422


class TooLarge(InboxError):
    code = "too_large"
    status = 413


class RateLimited(InboxError):
    code = "rate_limited"
    status = 429


class ConnectorError(InboxError):
    code = "connector_error"
    status = 400


class SignatureInvalid(ConnectorError):
    code = "signature_invalid"
    status = 403


class UnsupportedPayload(ConnectorError):
    code = "unsupported_payload"
    status = 400


class SendFailed(ConnectorError):
    """A provider did not take an outbound message.

    `retryable` says whether the same request may succeed later (rate limit, 5xx,
    network); `error_code` keeps the provider's code (e.g. Twilio "21610") and
    `opted_out` says the recipient has unsubscribed (the core records it).
    """

    code = "send_failed"
    status = 502

    def __init__(
        self,
        detail: str,
        *,
        retryable: bool,
        error_code: str | None = None,
        opted_out: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.retryable = retryable
        self.error_code = error_code
        self.opted_out = opted_out
        self.retry_after = retry_after
