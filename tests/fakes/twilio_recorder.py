"""A fake Twilio REST API: a real local HTTP server that records calls and answers like Twilio.

Point the code under test at it with `TWILIO_API_BASE=<recorder.base_url>` (or
`TwilioConnector(api_base=recorder.base_url)`); the real `twilio` client then talks to it.

    with TwilioRecorder() as twilio:                    # TEST_ACCOUNT_SID / TEST_AUTH_TOKEN
        ... send ...
        [msg] = twilio.messages                         # form fields of accepted messages
        assert msg["To"] == ["+15551234567"]
        twilio.fail_next(429, headers={"Retry-After": "2"})
        twilio.fail_next(400, code=21610, message="Attempt to send to unsubscribed recipient")
        twilio.status_callback(sid, "delivered")        # POST a signed callback to our app

What it checks like Twilio does: HTTP basic auth (account SID + auth token, 401/20003),
a `To` (21604), a `From` or `MessagingServiceSid` (21603), and a `Body`, `MediaUrl` or
`ContentSid` (21602). It answers 201 with a Message resource: `sid` "SM" + 32 hex,
`status` "queued" ("accepted" when sent through a Messaging Service, as Twilio does).
"""

from __future__ import annotations

import base64
import secrets
import threading
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from tests.fakes.http_recorder import RecordedRequest, RecordingServer, Reply

TEST_ACCOUNT_SID = "AC" + "0" * 31 + "1"
TEST_AUTH_TOKEN = "test-twilio-auth-token"
API_VERSION = "2010-04-01"

# Twilio's own wording for the errors this fake produces or tests commonly queue.
TWILIO_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    63016: "Failed to send freeform message because you are outside the allowed window.",
}


def twilio_signature(url: str, params: dict[str, list[str]] | dict[str, str], auth_token: str) -> str:
    """The X-Twilio-Signature Twilio would send for a form POST of `params` to `url`."""
    multi = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    return str(RequestValidator(auth_token).compute_signature(url, _MultiDict(multi)))


class _MultiDict(dict[str, list[str]]):
    def getlist(self, key: str) -> list[str]:  # what RequestValidator looks for
        return self[key]


class TwilioRecorder(RecordingServer):
    """Records Twilio REST calls; `messages` lists the form of every accepted message."""

    def __init__(
        self,
        *,
        account_sid: str = TEST_ACCOUNT_SID,
        auth_token: str | None = TEST_AUTH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.account_sid = account_sid
        self.auth_token = auth_token  # None: accept any credentials
        self._created: dict[str, dict[str, Any]] = {}
        self._created_lock = threading.Lock()

    @property
    def messages(self) -> list[dict[str, list[str]]]:
        """The form fields of every message Twilio accepted (201), in order."""
        with self._created_lock:
            return [dict(m["_form"]) for m in self._created.values()]

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """Every POST to a Messages.json endpoint, accepted or not."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")]

    def clear(self) -> None:
        super().clear()
        with self._created_lock:
            self._created.clear()

    def error_body(self, status: int, code: int | None, message: str | None) -> dict[str, Any]:
        """Twilio's legacy error JSON: code, message, more_info, status."""
        code = code or {429: 20429, 401: 20003, 404: 20404}.get(status, 20500 if status >= 500 else status)
        return {
            "code": code,
            "message": message or TWILIO_MESSAGES.get(code, "Error"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }

    def _error(self, status: int, code: int) -> Reply:
        return Reply.json(status, self.error_body(status, code, None))

    def respond(self, request: RecordedRequest) -> Reply:
        if self.auth_token is not None and not self._authorised(request):
            return self._error(401, 20003)
        parts = request.path.strip("/").split("/")
        # /2010-04-01/Accounts/{AccountSid}/Messages.json[/...]
        if len(parts) == 4 and parts[:2] == [API_VERSION, "Accounts"] and parts[3] == "Messages.json":
            if request.method == "POST":
                return self._create_message(parts[2], request)
        if len(parts) == 5 and parts[:2] == [API_VERSION, "Accounts"] and parts[3] == "Messages":
            with self._created_lock:
                found = self._created.get(parts[4].removesuffix(".json"))
            if request.method == "GET" and found is not None:
                return Reply.json(200, {k: v for k, v in found.items() if k != "_form"})
        return self._error(404, 20404)

    def _authorised(self, request: RecordedRequest) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token

    def _create_message(self, account_sid: str, request: RecordedRequest) -> Reply:
        form = request.form
        if not request.first("To"):
            return self._error(400, 21604)
        if not request.first("From") and not request.first("MessagingServiceSid"):
            return self._error(400, 21603)
        if not (request.first("Body") or form.get("MediaUrl") or request.first("ContentSid")):
            return self._error(400, 21602)
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC))
        media = form.get("MediaUrl", [])
        resource: dict[str, Any] = {
            "sid": sid,
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "to": request.first("To"),
            "from": request.first("From"),
            "messaging_service_sid": request.first("MessagingServiceSid"),
            "body": request.first("Body", ""),
            "status": "accepted" if request.first("MessagingServiceSid") else "queued",
            "num_media": str(len(media)),
            "num_segments": "1",
            "direction": "outbound-api",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "price": None,
            "error_code": None,
            "error_message": None,
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}/Media.json"
            },
            "_form": form,
        }
        with self._created_lock:
            self._created[sid] = resource
        return Reply.json(201, {k: v for k, v in resource.items() if k != "_form"})

    def signed_status_callback(
        self,
        sid: str,
        status: str,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        url: str | None = None,
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """The (url, form, headers) of the status callback Twilio would POST for `sid`.

        The URL is the `StatusCallback` the message was created with (or `url`); the
        X-Twilio-Signature is computed with this recorder's auth token.
        """
        with self._created_lock:
            message = self._created[sid]
        form = message["_form"]
        target = url or (form.get("StatusCallback") or [None])[0]
        if not target:
            raise AssertionError(f"message {sid} was sent without a StatusCallback")
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": self.account_sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message["to"],
            "From": message["from"] or "",
            "ApiVersion": API_VERSION,
        }
        if message["messaging_service_sid"]:
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if error_code:
            params["ErrorCode"] = error_code
        if error_message:
            params["ErrorMessage"] = error_message
        signature = twilio_signature(target, params, self.auth_token or TEST_AUTH_TOKEN)
        return target, params, {"X-Twilio-Signature": signature}

    def status_callback(self, sid: str, status: str, **kwargs: Any) -> httpx.Response:
        """POST the signed status callback (see `signed_status_callback`); blocking."""
        url, params, headers = self.signed_status_callback(sid, status, **kwargs)
        return httpx.post(url, data=params, headers=headers, timeout=10.0)

    async def status_callback_async(self, sid: str, status: str, **kwargs: Any) -> httpx.Response:
        """POST the signed status callback from a coroutine."""
        url, params, headers = self.signed_status_callback(sid, status, **kwargs)
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await client.post(url, data=params, headers=headers)
