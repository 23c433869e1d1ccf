"""Web chat: our own channel. Visitors speak JSON frames over `/ws/chat`.

The visitor's identity is a random id carried in a signed token (itsdangerous), so a
reload or a new tab resumes the same conversation and nobody can forge another
visitor's token. Outbound messages reach the visitor through the hub (their socket
subscribes to their conversation), so `send` only acknowledges.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from inbox.errors import BadInput, UnsupportedPayload
from inbox.settings import Settings
from inbox.types import Inbound, Outbound, SendResult, StatusUpdate, WebhookRequest

MAX_TEXT = 5000  # characters in one visitor message (a chat line, not a document)

# How many recently shown message ids to remember (a reply is dispatched within seconds).
SHOWN_MEMORY = 10_000

# Delivers a reply some other way (email) when the visitor has left; returns the
# provider id of what it sent, or None when there is no other way.
OfflineFallback = Callable[[Outbound], Awaitable[str | None]]


class WebchatConnector:
    """Frames in, visitor tokens, and a no-op send (delivery is the hub's job)."""

    provider = "webchat"
    channels = ("webchat",)

    def __init__(self, *, secret_key: str, offline_fallback: OfflineFallback | None = None,
                 identity_secret: str | None = None) -> None:
        self._signer = URLSafeSerializer(secret_key, salt="webchat-visitor")
        self._identity_secret = identity_secret
        self._online: Counter[str] = Counter()
        self._shown: OrderedDict[int, None] = OrderedDict()
        self.offline_fallback = offline_fallback

    def shown(self, message_id: int) -> None:
        """A visitor's socket has been handed message `message_id` (remember the latest)."""
        self._shown[message_id] = None
        while len(self._shown) > SHOWN_MEMORY:
            self._shown.popitem(last=False)

    def connected(self, visitor: str) -> None:
        """A socket of `visitor` opened (in this process)."""
        self._online[visitor] += 1

    def disconnected(self, visitor: str) -> None:
        """A socket of `visitor` closed."""
        self._online[visitor] -= 1
        if self._online[visitor] <= 0:
            del self._online[visitor]

    def is_online(self, visitor: str) -> bool:
        """Whether `visitor` has a socket open in this process."""
        return self._online[visitor] > 0

    def new_visitor(self) -> tuple[str, str]:
        """A fresh visitor id and its signed token."""
        visitor = "v_" + secrets.token_urlsafe(12)
        return visitor, self.token_for(visitor)

    def token_for(self, visitor: str) -> str:
        """The signed token that proves `visitor`."""
        return str(self._signer.dumps(visitor))

    def visitor_from_token(self, token: str) -> str | None:
        """The visitor id a token proves, or None for a forged or broken token."""
        try:
            value = self._signer.loads(token)
        except BadSignature:
            return None
        return value if isinstance(value, str) and value.startswith("v_") else None

    def email_signed(self, email: str, signature: Any) -> bool:
        """Whether `signature` is the shop's signature of `email`: the hex HMAC-SHA256 of
        the address, trimmed and lower-cased, with INBOX_WEBCHAT_IDENTITY_SECRET (the
        shop's site computes it for a signed-in customer, as Intercom's and Chatwoot's
        identity verification do). False when no secret is set or nothing was signed."""
        if not self._identity_secret or not isinstance(signature, str):
            return False
        expected = hmac.new(self._identity_secret.encode(), email.strip().lower().encode(),
                            hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature.strip().lower())

    def parse_frame(self, visitor: str, frame: Any) -> Inbound | None:
        """The Inbound for a visitor's `message` frame; None for other valid frames.

        Raises `BadInput` for a frame that is not a JSON object with a known type.
        """
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise BadInput('a frame is a JSON object with a "type"')
        kind = frame["type"]
        if kind in ("typing", "identify", "ping"):
            return None
        if kind != "message":
            raise BadInput(f"unknown frame type {kind!r}")
        text = frame.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadInput('a message frame needs a non-empty "text"')
        if len(text) > MAX_TEXT:
            raise BadInput(f"a message is at most {MAX_TEXT} characters")
        client_id = frame.get("client_id")
        if client_id is not None and (not isinstance(client_id, str) or len(client_id) > 100):
            raise BadInput('"client_id" must be a string of at most 100 characters')
        pid = f"{visitor}:{client_id or uuid.uuid4().hex}"
        return Inbound(
            channel="webchat",
            provider="webchat",
            provider_message_id=pid,
            sender=visitor,
            sender_kind="webchat",
            text=text.replace("\x00", ""),
            recipient="webchat",
            display_name=None,
            raw={"frame": {k: v for k, v in frame.items() if k in ("type", "text", "client_id")}},
        )

    def verify(self, request: WebhookRequest) -> None:
        """Web chat has no webhook; sockets carry their own token."""
        raise UnsupportedPayload("web chat has no webhook")

    def parse(self, request: WebhookRequest) -> list[Inbound]:
        """Web chat has no webhook."""
        raise UnsupportedPayload("web chat has no webhook")

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """Web chat has no status callbacks."""
        raise UnsupportedPayload("web chat has no status callbacks")

    async def send(self, outbound: Outbound) -> SendResult:
        """Deliver to the visitor's open socket (through the hub); when they have left and
        gave an email, the offline fallback mails it so a late reply still reaches them."""
        # Presence is per process: with several workers a visitor connected elsewhere may
        # also get the mail (a duplicate, never a loss).
        seen = outbound.message_id in self._shown or self.is_online(outbound.to)
        if not seen and self.offline_fallback is not None:
            await self.offline_fallback(outbound)
        return SendResult(provider_message_id=f"webchat-out:{outbound.message_id}", status="sent")


def build(settings: Settings) -> WebchatConnector:
    """Web chat is always on."""
    return WebchatConnector(secret_key=settings.secret_key,
                            identity_secret=settings.webchat_identity_secret)
