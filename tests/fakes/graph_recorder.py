"""A fake Meta Graph API (WhatsApp Cloud): a real local HTTP server that records calls.

Point the code under test at it with `WHATSAPP_GRAPH_BASE=<recorder.base_url>` (which
includes the version prefix, like https://graph.facebook.com/v21.0).

    with GraphRecorder() as graph:                      # expects TEST_ACCESS_TOKEN
        ... send ...
        [payload] = graph.messages                      # JSON bodies of accepted messages
        assert payload["text"]["body"] == "hi"
        graph.fail_next(429)                            # Graph-shaped error, code 130429
        graph.fail_next(400, code=131047, message="Re-engagement message")
        graph.add_media("123", b"...", "image/jpeg")    # for media download tests

Endpoints: POST /{ver}/{phone_number_id}/messages (checks `messaging_product`, `to`,
`type` and its object like Graph does, answers with a `wamid.` id), POST
/{ver}/{phone_number_id}/media (multipart upload, answers {"id"}), GET /{ver}/{media_id}
(media info with a download URL on this server), GET /media-download/{id} (the bytes).
Every call needs `Authorization: Bearer <access_token>` (401, code 190) unless the
recorder was built with `access_token=None`.

Helpers for inbound tests: `meta_signature(body, app_secret)` gives the
X-Hub-Signature-256 value; `text_webhook(...)` builds a minimal messages webhook body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from tests.fakes.http_recorder import RecordedRequest, RecordingServer, Reply

TEST_ACCESS_TOKEN = "test-graph-access-token"
TEST_APP_SECRET = "test-meta-app-secret"
TEST_VERIFY_TOKEN = "test-verify-token"
TEST_PHONE_NUMBER_ID = "106540352242922"
TEST_DISPLAY_NUMBER = "15550783881"
GRAPH_VERSION = "v21.0"

_VERSION = re.compile(r"v\d+(\.\d+)?")
_MESSAGE_TYPES = frozenset({
    "text", "image", "audio", "video", "document", "sticker", "template", "interactive",
    "location", "contacts", "reaction",
})
_MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})

GRAPH_MESSAGES: dict[int, str] = {
    1: "An unknown error occurred",
    2: "Service temporarily unavailable",
    100: "(#100) Invalid parameter",
    190: "Error validating access token",
    130429: "(#130429) Rate limit hit",
    131026: "(#131026) Message undeliverable",
    131047: "(#131047) Re-engagement message",
    131056: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
}


def meta_signature(body: bytes, app_secret: str = TEST_APP_SECRET) -> str:
    """The X-Hub-Signature-256 header Meta sends for `body`: sha256=<hex HMAC>."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def text_webhook(
    text: str,
    *,
    wa_id: str = "15551234567",
    name: str | None = "Test Customer",
    message_id: str | None = None,
    timestamp: int = 1_700_000_000,
    phone_number_id: str = TEST_PHONE_NUMBER_ID,
    display_phone_number: str = TEST_DISPLAY_NUMBER,
) -> dict[str, Any]:
    """A minimal, realistic `messages` webhook body carrying one text message."""
    contact: dict[str, Any] = {"wa_id": wa_id}
    if name is not None:
        contact["profile"] = {"name": name}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA_ID", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": display_phone_number,
                         "phone_number_id": phone_number_id},
            "contacts": [contact],
            "messages": [{"from": wa_id, "id": message_id or "wamid." + secrets.token_hex(12),
                          "timestamp": str(timestamp), "type": "text", "text": {"body": text}}],
        }}]}],
    }


class GraphRecorder(RecordingServer):
    """Records Graph API calls; `messages` lists accepted message payloads."""

    prefix = "/" + GRAPH_VERSION

    def __init__(
        self, *, access_token: str | None = TEST_ACCESS_TOKEN, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.access_token = access_token
        self._sent: list[dict[str, Any]] = []
        self._media: dict[str, tuple[bytes, str, str | None]] = {}
        self._state_lock = threading.Lock()

    @property
    def messages(self) -> list[dict[str, Any]]:
        """JSON bodies of every message Graph accepted, in order (each with its "_wamid")."""
        with self._state_lock:
            return [dict(m) for m in self._sent]

    @property
    def uploads(self) -> dict[str, tuple[bytes, str, str | None]]:
        """Uploaded media by id: (bytes, mime type, filename)."""
        with self._state_lock:
            return dict(self._media)

    def add_media(self, media_id: str, data: bytes, mime_type: str) -> None:
        """Make `media_id` downloadable (as if a customer had sent it)."""
        with self._state_lock:
            self._media[media_id] = (data, mime_type, None)

    def clear(self) -> None:
        super().clear()
        with self._state_lock:
            self._sent.clear()
            self._media.clear()

    def error_body(self, status: int, code: int | None, message: str | None) -> dict[str, Any]:
        """Graph's error JSON: {"error": {message, type, code, error_data, fbtrace_id}}."""
        default = {429: 130429, 401: 190, 400: 100, 503: 2}.get(status, 1 if status >= 500 else 100)
        code = code or default
        text = message or GRAPH_MESSAGES.get(code, "Error")
        return {"error": {
            "message": text,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": text},
            "fbtrace_id": "Afake" + secrets.token_hex(6),
        }}

    def _error(self, status: int, code: int, message: str | None = None) -> Reply:
        return Reply.json(status, self.error_body(status, code, message))

    def respond(self, request: RecordedRequest) -> Reply:
        parts = request.path.strip("/").split("/")
        if parts[:1] == ["media-download"] and len(parts) == 2:
            return self._download(parts[1], request)
        if self.access_token is not None and request.headers.get("authorization") != f"Bearer {self.access_token}":
            return self._error(401, 190)
        if parts and _VERSION.fullmatch(parts[0]):
            parts = parts[1:]
        if len(parts) == 2 and parts[1] == "messages" and request.method == "POST":
            return self._message(request)
        if len(parts) == 2 and parts[1] == "media" and request.method == "POST":
            return self._upload(request)
        if len(parts) == 1 and request.method == "GET":
            with self._state_lock:
                media = self._media.get(parts[0])
            if media is not None:
                data, mime, _ = media
                return Reply.json(200, {
                    "messaging_product": "whatsapp", "id": parts[0], "mime_type": mime,
                    "sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data),
                    "url": f"{self.root_url}/media-download/{parts[0]}",
                })
        return self._error(400, 100, "Unsupported request - method type or path")

    def _message(self, request: RecordedRequest) -> Reply:
        try:
            payload = request.json
        except ValueError:
            return self._error(400, 100, "(#100) The parameter messaging_product is required.")
        if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp":
            return self._error(400, 100, "(#100) The parameter messaging_product is required.")
        kind = payload.get("type", "text")
        if not payload.get("to"):
            return self._error(400, 100, "(#100) The parameter to is required.")
        body = payload.get(kind)
        if kind not in _MESSAGE_TYPES or not isinstance(body, dict):
            return self._error(400, 100, f"(#100) Param {kind} must be a JSON object")
        if kind == "text" and not str(body.get("body") or "").strip():
            return self._error(400, 100, "(#100) Param text['body'] is required")
        if kind in _MEDIA_TYPES and not (body.get("link") or body.get("id")):
            return self._error(400, 100, f"(#100) Param {kind} must have a link or an id")
        if kind == "template" and not (body.get("name") and (body.get("language") or {}).get("code")):
            return self._error(400, 100, "(#100) Param template['name'] and language are required")
        wamid = "wamid." + secrets.token_urlsafe(24)
        with self._state_lock:
            self._sent.append({**payload, "_wamid": wamid})
        message: dict[str, Any] = {"id": wamid}
        if kind == "template":
            message["message_status"] = "accepted"
        return Reply.json(200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": payload["to"], "wa_id": str(payload["to"]).lstrip("+")}],
            "messages": [message],
        })

    def _upload(self, request: RecordedRequest) -> Reply:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._error(400, 100, "(#100) media upload must be multipart/form-data")
        parsed = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
        )
        fields: dict[str, str] = {}
        file: tuple[bytes, str, str | None] | None = None
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            if name == "file":
                file = (data, part.get_content_type(), part.get_filename())
            elif isinstance(name, str):
                fields[name] = data.decode()
        if fields.get("messaging_product") != "whatsapp" or file is None:
            return self._error(400, 100, "(#100) messaging_product and file are required")
        media_id = str(secrets.randbelow(10**15) + 10**15)
        with self._state_lock:
            self._media[media_id] = (file[0], fields.get("type") or file[1], file[2])
        return Reply.json(200, {"id": media_id})

    def _download(self, media_id: str, request: RecordedRequest) -> Reply:
        if self.access_token is not None and request.headers.get("authorization") != f"Bearer {self.access_token}":
            return Reply(401, b"", {})
        with self._state_lock:
            media = self._media.get(media_id)
        if media is None:
            return Reply(404, b"", {})
        return Reply(200, media[0], {"Content-Type": media[1]})


__all__ = [
    "GRAPH_VERSION", "TEST_ACCESS_TOKEN", "TEST_APP_SECRET", "TEST_DISPLAY_NUMBER",
    "TEST_PHONE_NUMBER_ID", "TEST_VERIFY_TOKEN", "GraphRecorder", "meta_signature", "text_webhook",
]
