"""The core vocabulary: the normalised values that cross the connector boundary.

Connectors turn provider requests into these values; nothing past `connectors/` reads a
provider field. Everything here is plain data (no I/O, no ORM), JSON-safe where it is
stored (`raw`, `meta`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

# The customer-facing channels. A provider (Twilio, Meta, SMTP, our own socket) carries
# one or more of them; a conversation remembers both.
Channel = Literal["sms", "whatsapp", "email", "webchat"]
CHANNELS: tuple[str, ...] = ("sms", "whatsapp", "email", "webchat")

# Identity kinds: how one person is addressed. SMS and WhatsApp share "phone", so the same
# number on both channels is one contact.
IdentityKind = Literal["phone", "email", "webchat", "whatsapp_user"]

# Delivery states of an outbound message, in order of progress (failed/undelivered end it).
DELIVERY_STATES: tuple[str, ...] = (
    "pending", "queued", "sent", "delivered", "read", "undelivered", "failed",
)

# Flags a connector may put on an Inbound. The core stores them on the message and the
# responders read them; none of them is channel-specific in meaning.
FLAG_AUTO_REPLY = "auto_reply"      # out-of-office, auto-responder: never auto-answer
FLAG_BOUNCE = "bounce"              # delivery failure report
FLAG_READ_RECEIPT = "read_receipt"  # MDN or similar
FLAG_BULK = "bulk"                  # lists, Precedence: bulk/junk/list
FLAG_BROKEN = "broken"              # could only be partly parsed
FLAG_OPT_OUT = "opt_out"            # STOP and friends
FLAG_OPT_IN = "opt_in"              # START / UNSTOP
FLAG_HELP = "help"                  # HELP keyword
# Flags that mean "a robot or a system wrote this": no auto-answer, no reopen by itself.
MACHINE_FLAGS: frozenset[str] = frozenset(
    {FLAG_AUTO_REPLY, FLAG_BOUNCE, FLAG_READ_RECEIPT, FLAG_BULK}
)


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A provider's HTTP request, reduced to what connectors need (no framework types).

    `url` is the public URL the provider called (what it signed); `headers` keys are
    lower-case; `form` holds decoded form fields (repeated keys keep every value).
    """

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, list[str]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The header's value, looked up case-insensitively, or None."""
        return self.headers.get(name.lower())

    def first(self, key: str, default: str = "") -> str:
        """The first value of form field `key`, or `default`."""
        values = self.form.get(key)
        return values[0] if values else default


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a message: by URL (provider-hosted media) or by bytes."""

    content_type: str
    filename: str | None = None
    url: str | None = None
    data: bytes | None = None
    size: int | None = None
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class ThreadHints:
    """What a connector knows about where a message belongs (email mostly)."""

    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    subject: str | None = None
    # A token we put in our own Reply-To (support+<token>@...), found in a recipient.
    reply_token: str | None = None


@dataclass(slots=True)
class Inbound:
    """One normalised customer message, as every connector produces it.

    `sender` is the customer's address with any provider prefix removed (a phone number,
    an email address, a web-chat visitor id); `sender_kind` says which identity kind it
    is. `recipient` is our address the customer wrote to (business number, support
    mailbox), so replies leave from it. `provider` names the connector that received it.
    """

    channel: str
    provider: str
    provider_message_id: str
    sender: str
    sender_kind: str
    text: str = ""
    display_name: str | None = None
    recipient: str | None = None
    # Where replies must leave from when that is not `recipient` itself (e.g. Meta's
    # phone_number_id behind a display number); the conversation keeps it.
    reply_from: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    thread: ThreadHints = field(default_factory=ThreadHints)
    received_at: datetime = field(default_factory=utcnow)
    flags: frozenset[str] = frozenset()
    # JSON-safe extras an agent may want to see: location, referral, button payload,
    # reply context, reaction, quoted history, ... Shown, never interpreted by the core.
    meta: dict[str, Any] = field(default_factory=dict)
    # The provider payload, JSON-safe, kept for audit.
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery report for one of our outbound messages."""

    channel: str
    provider: str
    provider_message_id: str
    status: str  # one of DELIVERY_STATES
    error_code: str | None = None
    error_text: str | None = None
    at: datetime = field(default_factory=utcnow)
    # For bounces that name the recipient but not our message id.
    recipient: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """An approved message template (WhatsApp): provider template id + variables."""

    name: str
    language: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Outbound:
    """One message to send to a customer, as the dispatcher hands it to a connector."""

    message_id: int
    conversation_id: int
    channel: str
    provider: str
    to: str            # the customer's address on this channel (as stored on the identity)
    from_address: str | None  # our address the customer wrote to; None: the default
    text: str
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    template: TemplateRef | None = None
    thread: ThreadHints = field(default_factory=ThreadHints)
    # Our stable reference for this message, usable as an idempotency key by providers.
    idempotency_key: str = ""
    display_name: str | None = None  # the customer's name, for email To headers


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a connector reports after a provider accepted an outbound message."""

    provider_message_id: str
    status: str = "sent"  # "queued" when the provider only queued it
