"""WhatsApp through Meta's Cloud API (Graph): webhooks in, /messages out.

Inbound: Meta POSTs JSON to `/webhooks/whatsapp`, signed `X-Hub-Signature-256:
sha256=<hex HMAC-SHA256 of the raw body, keyed with the app secret>`; the subscription
GET is answered by `verify_challenge`. One webhook may carry messages *and* statuses:
the web layer calls both `parse` and `parse_status` on it.

Addresses: a customer's `wa_id` becomes E.164 (``+`` digits, kind "phone"); a customer
known only by a business-scoped user id (BSUID, e.g. ``US.1349…``) keeps it (kind
"whatsapp_user"). `Inbound.recipient` is our display number in E.164; the
`phone_number_id` replies must leave from is in ``meta["phone_number_id"]`` and is also
remembered per display number, so `send(outbound)` with `from_address=<that display
number>` finds it (see `phone_number_id_for`).

Media arrive as `Attachment(url="meta-media:<media id>")`: Graph media URLs need the
access token and expire, so the web layer downloads them through `fetch_media`.

`Inbound.meta` keys this module may set: wa_id, whatsapp_user_id,
parent_whatsapp_user_id, username, phone_number_id, message_type, media, location,
contacts, button, list_reply, flow_response, reaction, order, system, identity,
delete_of, edit_of, reply_to_provider_id, forwarded, forwarded_many_times,
referred_product, referral, errors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.whatsapp_window import ensure_free_form_allowed
from inbox.errors import ConnectorError, NotFound, SendFailed, SignatureInvalid, UnsupportedPayload
from inbox.settings import Settings
from inbox.types import (
    FLAG_AUTO_REPLY,
    FLAG_BROKEN,
    Attachment,
    Inbound,
    Outbound,
    SendResult,
    StatusUpdate,
    TemplateRef,
    WebhookRequest,
)

log = logging.getLogger(__name__)

DEFAULT_GRAPH_BASE = "https://graph.facebook.com/v21.0"
MEDIA_PREFIX = "meta-media:"
MEDIA_TYPES = ("image", "video", "audio", "voice", "document", "sticker")
MAX_TEXT = 4096  # Cloud API limit for a text body
# Status webhooks -> our DELIVERY_STATES ("played" is a voice message listened to).
STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "played": "read",
              "failed": "failed"}
# Graph error codes worth retrying even on a 4xx: rate limits and transient failures
# (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 32, 613, 80007, 130429, 131000, 131016, 131048,
                             131056, 133004})


# Longest identifiers and addresses we accept (the store's column sizes, inbox/models.py);
# real wamids are about 60 characters, wa_ids at most 15 digits.
MAX_ID = 500
MAX_ADDRESS = 320
MAX_ERROR_CODE = 50
MAX_ERROR_TEXT = 1000


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    """`value` when it is a list, else [] (a webhook field of the wrong type reads as absent)."""
    return value if isinstance(value, list) else []


def _without_nul(value: Any) -> Any:
    """`value` with NUL characters removed from every string in it (keys included).

    Nothing reads a NUL on purpose, and PostgreSQL refuses one in text. The signature is
    checked on the raw bytes, before this.
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def _s(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _e164(number: str) -> str:
    """"+" and digits when `number` is a phone number in any common spelling; else unchanged."""
    digits = "".join(ch for ch in number if ch not in " -().+")
    return f"+{digits}" if digits.isdigit() else number


def _when(timestamp: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(timestamp), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _clean(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v not in (None, "", [], {})}


def location_text(location: dict[str, Any]) -> str:
    """A readable line for a shared location, with a map link an agent can click."""
    lat, lon = location.get("latitude"), location.get("longitude")
    label = ", ".join(str(p) for p in (location.get("name"), location.get("address")) if p)
    where = f"{label} " if label else ""
    return f"📍 Location: {where}({lat}, {lon}) https://maps.google.com/?q={lat},{lon}"


def _contact_line(contact: dict[str, Any]) -> str:
    name = _d(contact.get("name"))
    full = _s(name.get("formatted_name")) or " ".join(
        p for p in (_s(name.get("first_name")), _s(name.get("last_name"))) if p)
    details = [
        f"{_s(p.get('phone'))} ({_s(p.get('type'))})" if p.get("type") else _s(p.get("phone"))
        for p in _l(contact.get("phones")) if isinstance(p, dict) and p.get("phone")
    ] + [_s(e.get("email")) for e in _l(contact.get("emails")) if isinstance(e, dict) and e.get("email")]
    return "👤 Shared contact: " + (full or "(no name)") + (": " + ", ".join(details) if details else "")


class _Content:
    """What one WhatsApp message says: text, attachments, meta and flags."""

    def __init__(self) -> None:
        self.text = ""
        self.attachments: list[Attachment] = []
        self.meta: dict[str, Any] = {}
        self.flags: set[str] = set()


def _read_content(msg: dict[str, Any]) -> _Content:
    """The content of a message object by its `type`; a readable placeholder when unknown."""
    out = _Content()
    kind = _s(msg.get("type"))
    out.meta["message_type"] = kind
    body = _d(msg.get(kind))
    if kind == "text":
        out.text = _s(body.get("body"))
    elif kind in MEDIA_TYPES:
        media = _clean({
            "id": _s(body.get("id")), "mime_type": _s(body.get("mime_type")),
            "sha256": _s(body.get("sha256")), "caption": _s(body.get("caption")),
            "filename": _s(body.get("filename")), "url": _s(body.get("url")),
            "voice": body.get("voice") is True or kind == "voice" or None,
            "animated": body.get("animated") if isinstance(body.get("animated"), bool) else None,
        })
        out.meta["media"] = {"kind": kind, **media}
        out.text = media.get("caption", "")
        ref = f"{MEDIA_PREFIX}{media['id']}" if media.get("id") else media.get("url")
        if ref:
            out.attachments.append(Attachment(
                content_type=media.get("mime_type") or "application/octet-stream",
                filename=media.get("filename"), url=ref))
        else:
            out.text = out.text or f"[{kind} without a media id]"
            out.flags.add(FLAG_BROKEN)
    elif kind == "location":
        location = _clean({k: body.get(k) for k in ("latitude", "longitude", "name", "address", "url")})
        out.meta["location"] = location
        out.text = location_text(location)
    elif kind == "contacts":
        shared = [c for c in _l(msg.get("contacts")) if isinstance(c, dict)]
        out.meta["contacts"] = shared
        out.text = "\n".join(_contact_line(c) for c in shared) or "👤 Shared contact"
    elif kind == "interactive":
        _read_interactive(body, out)
    elif kind == "button":  # a template's quick-reply button
        out.meta["button"] = {"text": _s(body.get("text")), "payload": _s(body.get("payload"))}
        out.text = out.meta["button"]["text"] or out.meta["button"]["payload"]
    elif kind == "reaction":
        emoji = _s(body.get("emoji")) or None
        out.meta["reaction"] = {"emoji": emoji, "message_id": _s(body.get("message_id")) or None}
        out.text = f"reacted {emoji}" if emoji else "removed a reaction"
    elif kind == "order":
        _read_order(body, out)
    elif kind == "system":
        _read_system(msg, body, out)
    elif kind == "revoke":
        out.meta["delete_of"] = _s(body.get("original_message_id")) or None
        out.text = "🗑 The customer deleted a message"
    elif kind == "edit":
        inner = _read_content(_d(body.get("message")))
        out.text = inner.text or "✏️ The customer edited a message"
        out.attachments = inner.attachments
        out.meta.update({k: v for k, v in inner.meta.items() if k != "message_type"})
        out.meta["edited_type"] = inner.meta.get("message_type")
        out.meta["edit_of"] = _s(body.get("original_message_id")) or None
        out.flags |= inner.flags
    else:
        detail = _s(_d(msg.get("unsupported")).get("type")) or kind or "unknown"
        out.text = f"[Unsupported WhatsApp message: {detail}]"
        out.flags.add(FLAG_BROKEN)
    return out


def _read_interactive(body: dict[str, Any], out: _Content) -> None:
    kind = _s(body.get("type"))
    reply = _d(body.get(kind))
    if kind == "button_reply":
        out.meta["button"] = {"id": _s(reply.get("id")), "title": _s(reply.get("title"))}
        out.text = out.meta["button"]["title"] or out.meta["button"]["id"]
    elif kind == "list_reply":
        out.meta["list_reply"] = _clean({"id": _s(reply.get("id")), "title": _s(reply.get("title")),
                                         "description": _s(reply.get("description"))})
        out.text = _s(reply.get("title")) or _s(reply.get("id"))
    elif kind == "nfm_reply":  # a WhatsApp Flow's answer
        raw = _s(reply.get("response_json"))
        try:
            response: Any = json.loads(raw) if raw else None
        except ValueError:
            response = raw
        out.meta["flow_response"] = {"name": _s(reply.get("name")), "response": response}
        out.text = _s(reply.get("body")) or "📝 Form submitted"
    else:
        out.text = "[Interactive reply that could not be read]"
        out.flags.add(FLAG_BROKEN)


def _read_order(body: dict[str, Any], out: _Content) -> None:
    out.meta["order"] = body
    items = [i for i in _l(body.get("product_items")) if isinstance(i, dict)]
    lines = ", ".join(
        f"{i.get('quantity', '?')} × {_s(i.get('product_retailer_id'))} "
        f"({i.get('item_price', '?')} {_s(i.get('currency'))})".replace(" )", ")")
        for i in items
    )
    out.text = "🛒 Order: " + (lines or "(no items)")
    if note := _s(body.get("text")).strip():
        out.text += "\n" + note


def _read_system(msg: dict[str, Any], body: dict[str, Any], out: _Content) -> None:
    kind = _s(body.get("type"))
    new_id = _s(body.get("wa_id") or body.get("new_wa_id"))
    out.meta["system"] = _clean({"type": kind, "body": _s(body.get("body")),
                                 "new_sender": _e164(new_id) if new_id else None})
    if isinstance(msg.get("identity"), dict):
        out.meta["identity"] = msg["identity"]
    described = {
        "user_changed_number": f"The customer changed their number to {_e164(new_id)}" if new_id else "",
        "customer_identity_changed": "The customer's WhatsApp security code changed",
    }.get(kind, "")
    out.text = f"ℹ️ {_s(body.get('body')) or described or 'WhatsApp system message'}"
    out.flags.add(FLAG_AUTO_REPLY)  # written by WhatsApp, not the customer: never auto-answer


class WhatsAppCloudConnector:
    """WhatsApp Cloud API connector. See the module docstring for addresses and meta keys."""

    provider = "meta"
    channels: tuple[str, ...] = ("whatsapp",)

    def __init__(
        self,
        *,
        app_secret: str,
        verify_token: str,
        access_token: str,
        graph_base: str | None = None,
        phone_number_id: str | None = None,
        phone_number_ids: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        default_language: str = "en_US",
        timeout: float = 15.0,
    ) -> None:
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.access_token = access_token
        self.graph_base = (graph_base or DEFAULT_GRAPH_BASE).rstrip("/")
        # Where replies leave from when the outbound names no known number.
        self.phone_number_id = phone_number_id
        # Display number (E.164) -> phone_number_id; configured, and learned from webhooks.
        self._phone_ids: dict[str, str] = {_e164(k): v for k, v in (phone_number_ids or {}).items()}
        self.default_language = default_language
        self.timeout = timeout
        self._owns_http = http_client is None
        self._http_client = http_client

    @property
    def _http(self) -> httpx.AsyncClient:
        # Made on first use: building one costs an SSL context, parsing never needs it.
        if self._http_client is None:
            self._http_client = httpx.AsyncClient(timeout=self.timeout)
        return self._http_client

    async def aclose(self) -> None:
        """Close the HTTP client if this connector created it (safe to call twice)."""
        if self._owns_http and self._http_client is not None:
            client, self._http_client = self._http_client, None
            await client.aclose()

    # -- inbound ---------------------------------------------------------------------
    def verify_challenge(self, query: Mapping[str, Any]) -> str:
        """The `hub.challenge` to echo for Meta's subscription GET; SignatureInvalid otherwise.

        Requires hub.mode=subscribe and hub.verify_token equal to ours (constant time).
        """
        def get(key: str) -> str:
            value = query.get(key)
            return _s(value[0] if isinstance(value, list) and value else value)

        token, challenge = get("hub.verify_token"), get("hub.challenge")
        if (
            get("hub.mode") == "subscribe"
            and self.verify_token
            and hmac.compare_digest(token.encode(), self.verify_token.encode())
            and challenge
        ):
            return challenge
        raise SignatureInvalid("hub.mode/hub.verify_token do not match this webhook")

    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureInvalid unless X-Hub-Signature-256 is the HMAC of the raw body."""
        header = (request.header("x-hub-signature-256") or "").strip()
        if not header:
            raise SignatureInvalid("missing X-Hub-Signature-256 header")
        if not self.app_secret:
            raise SignatureInvalid("WHATSAPP_APP_SECRET is not configured")
        scheme, _, given = header.partition("=")
        expected = hmac.new(self.app_secret.encode(), request.body, hashlib.sha256).hexdigest()
        if scheme.lower() != "sha256" or not hmac.compare_digest(given.lower().encode(), expected.encode()):
            raise SignatureInvalid("X-Hub-Signature-256 does not match the body")

    @staticmethod
    def _changes(request: WebhookRequest) -> list[dict[str, Any]]:
        """The `value` of every `messages` change; UnsupportedPayload for a non-webhook body."""
        try:
            payload = _without_nul(json.loads(request.body))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise UnsupportedPayload(f"expected a JSON webhook body: {exc}") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
            raise UnsupportedPayload('expected {"object": "whatsapp_business_account", "entry": [...]}')
        if payload.get("object") not in (None, "whatsapp_business_account"):
            return []
        return [
            _d(change.get("value"))
            for entry in payload["entry"] if isinstance(entry, dict)
            for change in _l(entry.get("changes")) if isinstance(change, dict)
            if change.get("field", "messages") == "messages"
        ]

    def parse(self, request: WebhookRequest) -> list[Inbound]:
        """One Inbound per `entry[].changes[].value.messages[]`; [] when there are none.

        Never fails on a message it does not know: it becomes a readable placeholder
        flagged FLAG_BROKEN. A message without an id is skipped (it could not be stored
        idempotently).
        """
        found: list[Inbound] = []
        for value in self._changes(request):
            metadata = _d(value.get("metadata"))
            contacts = [c for c in _l(value.get("contacts")) if isinstance(c, dict)]
            for msg in _l(value.get("messages")):
                if isinstance(msg, dict) and msg.get("id"):
                    inbound = self._inbound(msg, metadata, contacts, value.get("errors"))
                    if self._fits(inbound):
                        found.append(inbound)
        return found

    @staticmethod
    def _fits(inbound: Inbound) -> bool:
        """Whether the ids and addresses are of a size real ones have (else: skipped, logged).

        Skipped rather than refused: a 4xx would make Meta redeliver the whole batch,
        the good messages with it, for days.
        """
        sizes = [(inbound.provider_message_id, MAX_ID), (inbound.sender, MAX_ADDRESS),
                 (inbound.recipient or "", MAX_ADDRESS), (inbound.reply_from or "", MAX_ADDRESS)]
        if all(len(value) <= limit for value, limit in sizes):
            return True
        log.warning("skipping a WhatsApp message with an oversized id or address: %.80r",
                    inbound.provider_message_id)
        return False

    def _inbound(
        self, msg: dict[str, Any], metadata: dict[str, Any], contacts: list[dict[str, Any]],
        change_errors: Any,
    ) -> Inbound:
        from_ = _s(msg.get("from"))
        contact = next(
            (c for c in contacts if (from_ and c.get("wa_id") == from_)
             or (msg.get("from_user_id") and c.get("user_id") == msg.get("from_user_id"))),
            contacts[0] if len(contacts) == 1 else {},
        )
        profile = _d(contact.get("profile"))
        user_id = _s(msg.get("from_user_id") or contact.get("user_id"))
        if from_.isdigit():
            sender, kind = f"+{from_}", "phone"
        else:
            sender, kind = user_id or from_, "whatsapp_user"
        content = _read_content(msg)
        meta = _clean({
            "wa_id": from_ if from_.isdigit() else _s(contact.get("wa_id")),
            "whatsapp_user_id": user_id,
            "parent_whatsapp_user_id": _s(contact.get("parent_user_id")),
            "username": _s(profile.get("username")),
            "phone_number_id": _s(metadata.get("phone_number_id")),
        })
        meta.update(content.meta)
        context = _d(msg.get("context"))
        if context.get("id"):
            meta["reply_to_provider_id"] = _s(context["id"])
        if context.get("forwarded"):
            meta["forwarded"] = True
        if context.get("frequently_forwarded"):
            meta["forwarded"] = meta["forwarded_many_times"] = True
        if isinstance(context.get("referred_product"), dict):
            meta["referred_product"] = context["referred_product"]
        if isinstance(msg.get("referral"), dict):
            meta["referral"] = msg["referral"]
        errors = msg.get("errors") or change_errors
        if isinstance(errors, list) and errors:
            meta["errors"] = errors
            content.flags.add(FLAG_BROKEN)
        recipient = _e164(_s(metadata.get("display_phone_number"))) or None
        if recipient and meta.get("phone_number_id"):
            self._phone_ids[recipient] = meta["phone_number_id"]
        return Inbound(
            channel="whatsapp",
            provider=self.provider,
            provider_message_id=_s(msg["id"]),
            sender=sender,
            sender_kind=kind,
            text=content.text.replace("\x00", ""),
            display_name=_s(profile.get("name")).strip() or None,
            recipient=recipient,
            reply_from=meta.get("phone_number_id") or None,
            attachments=content.attachments,
            received_at=_when(msg.get("timestamp")),
            flags=frozenset(content.flags),
            meta=meta,
            raw=_clean({"message": msg, "metadata": metadata, "contact": contact}),
        )

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """One StatusUpdate per `statuses[]` entry we track (sent/delivered/read/played/failed)."""
        updates: list[StatusUpdate] = []
        for value in self._changes(request):
            for status in _l(value.get("statuses")):
                if not isinstance(status, dict) or not status.get("id"):
                    continue
                ours = STATUS_MAP.get(_s(status.get("status")))
                if ours is None:
                    log.info("ignoring WhatsApp status %r", status.get("status"))
                    continue
                error = next((e for e in _l(status.get("errors")) if isinstance(e, dict)), {})
                text = _s(error.get("message") or error.get("title")) or _s(
                    _d(error.get("error_data")).get("details"))
                recipient = _s(status.get("recipient_id"))
                updates.append(StatusUpdate(
                    channel="whatsapp",
                    provider=self.provider,
                    provider_message_id=_s(status["id"]),
                    status=ours,
                    error_code=_s(error.get("code"))[:MAX_ERROR_CODE] or None,
                    error_text=text[:MAX_ERROR_TEXT] or None,
                    at=_when(status.get("timestamp")),
                    recipient=(_e164(recipient) if recipient.isdigit() else recipient) or None,
                ))
        return updates

    # -- outbound --------------------------------------------------------------------
    def check_reply(
        self,
        *,
        channel: str,
        last_customer_at: datetime | None,
        now: datetime | None = None,
        template: TemplateRef | None = None,
    ) -> None:
        """Raise Conflict for a free-form reply outside the 24-hour window (Graph error 131047)."""
        ensure_free_form_allowed(last_customer_at, now, template=template)

    def phone_number_id_for(self, from_address: str | None) -> str:
        """The Graph phone_number_id to send from.

        `from_address` may be a phone_number_id itself (all digits, 10 or more, no "+"),
        or a display number seen in a webhook or configured in `phone_number_ids`;
        otherwise the configured default. SendFailed (final) when none is known.
        """
        if from_address:
            bare = from_address.strip()
            if bare.isdigit() and len(bare) >= 10:
                return bare
            if known := self._phone_ids.get(_e164(bare)):
                return known
        if self.phone_number_id:
            return self.phone_number_id
        raise SendFailed(
            f"no WhatsApp phone_number_id for sender {from_address!r}: set "
            "WHATSAPP_PHONE_NUMBER_ID or pass the phone_number_id as from_address",
            retryable=False,
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    async def send(self, outbound: Outbound) -> SendResult:
        """POST the message(s) to `{graph_base}/{phone_number_id}/messages`; returns the first wamid.

        A template goes alone; text goes as one text message, or as the caption of the
        first image/video/document; every attachment is one message (by link, by Meta
        media id for "meta-media:<id>", or uploaded first when only bytes are known).
        SendFailed: 429, 5xx, rate-limit codes and network errors are retryable (with
        Retry-After); other Graph errors (131047 outside the window, 131026
        undeliverable, ...) are final with the code. When a later part fails after an
        earlier one went out, the failure is final, so a retry never duplicates a part.
        """
        pnid = self.phone_number_id_for(outbound.from_address)
        payloads = await self.build_payloads(outbound, phone_number_id=pnid)
        ids: list[str] = []
        for payload in payloads:
            try:
                ids.append(await self._post_message(pnid, payload))
            except SendFailed as exc:
                if not ids:
                    raise
                raise SendFailed(f"sent {len(ids)} of {len(payloads)} parts, then: {exc.detail}",
                                 retryable=False, error_code=exc.error_code) from exc
        return SendResult(provider_message_id=ids[0], status="queued")

    async def build_payloads(self, outbound: Outbound, *, phone_number_id: str) -> list[dict[str, Any]]:
        """The /messages JSON bodies for `outbound`, uploading byte-only attachments first."""
        to = outbound.to.removeprefix("whatsapp:").strip()
        to = to[1:] if to.startswith("+") else to
        base: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        if outbound.thread.in_reply_to and outbound.thread.in_reply_to.startswith("wamid."):
            base["context"] = {"message_id": outbound.thread.in_reply_to}
        if outbound.idempotency_key:  # echoed in status webhooks (max 512 characters)
            base["biz_opaque_callback_data"] = outbound.idempotency_key[:512]
        if outbound.template is not None:
            return [{**base, "type": "template", "template": self._template(outbound.template)}]
        text = outbound.text.strip()
        if len(text) > MAX_TEXT:
            raise SendFailed(f"text is {len(text)} characters; WhatsApp allows {MAX_TEXT}",
                             retryable=False, error_code="100")
        payloads: list[dict[str, Any]] = []
        for attachment in outbound.attachments:
            kind, media = await self._media_object(attachment, phone_number_id)
            if text and kind in ("image", "video", "document"):
                media["caption"], text = text, ""
            payloads.append({**base, "type": kind, kind: media})
        if text:
            payloads.insert(0, {**base, "type": "text", "text": {"preview_url": False, "body": text}})
        if not payloads:
            raise SendFailed("empty message: no text, media or template", retryable=False)
        return payloads

    def _template(self, template: TemplateRef) -> dict[str, Any]:
        body: dict[str, Any] = {"name": template.name,
                                "language": {"code": template.language or self.default_language}}
        variables = template.variables
        if variables:
            if all(k.isdigit() for k in variables):  # positional {{1}}, {{2}}
                params = [{"type": "text", "text": variables[k]} for k in sorted(variables, key=int)]
            else:  # named parameters
                params = [{"type": "text", "parameter_name": k, "text": v} for k, v in variables.items()]
            body["components"] = [{"type": "body", "parameters": params}]
        return body

    async def _media_object(self, attachment: Attachment, phone_number_id: str) -> tuple[str, dict[str, Any]]:
        ctype = attachment.content_type.lower()
        major = ctype.split("/", 1)[0]
        kind = ("sticker" if ctype == "image/webp" else major) if major in ("image", "video", "audio") else "document"
        media: dict[str, Any] = {}
        url = attachment.url or ""
        if url.startswith(MEDIA_PREFIX):
            media["id"] = url.removeprefix(MEDIA_PREFIX)
        elif url.startswith(("https://", "http://")):
            media["link"] = url
        elif attachment.data is not None:
            media["id"] = await self._upload(attachment, phone_number_id)
        else:
            raise SendFailed(f"attachment {attachment.filename or ctype!r} has neither a URL nor bytes",
                             retryable=False)
        if kind == "document" and attachment.filename:
            media["filename"] = attachment.filename
        return kind, media

    async def _upload(self, attachment: Attachment, phone_number_id: str) -> str:
        files = {"file": (attachment.filename or "file", attachment.data or b"", attachment.content_type)}
        data = {"messaging_product": "whatsapp", "type": attachment.content_type}
        body = await self._request("POST", f"{self.graph_base}/{phone_number_id}/media", data=data, files=files)
        media_id = _s(body.get("id"))
        if not media_id:
            raise SendFailed("Graph accepted the upload but returned no media id", retryable=True)
        return media_id

    async def _post_message(self, phone_number_id: str, payload: dict[str, Any]) -> str:
        body = await self._request("POST", f"{self.graph_base}/{phone_number_id}/messages", json=payload)
        messages = body.get("messages")
        wamid = _s(_d(messages[0]).get("id")) if isinstance(messages, list) and messages else ""
        if not wamid:
            raise SendFailed("Graph accepted the message but returned no id", retryable=True)
        return wamid

    async def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, url, headers=self._headers(), **kwargs)
        except httpx.TransportError as exc:  # connect/read errors and timeouts
            raise SendFailed(f"network error talking to Graph: {exc!r}", retryable=True) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_success:
            return _d(body)
        raise _graph_error(response, _d(body))

    async def fetch_media(self, media: str) -> tuple[bytes, str]:
        """Download a customer's media (`meta-media:<id>` or a bare id): (bytes, content type).

        Raises NotFound when Graph no longer has it (media expire after 30 days),
        ConnectorError for any other failure.
        """
        media_id = media.removeprefix(MEDIA_PREFIX)
        try:
            info = await self._http.get(f"{self.graph_base}/{media_id}", headers=self._headers())
            if info.status_code in (400, 404):
                raise NotFound(f"WhatsApp media {media_id} is not available")
            info.raise_for_status()
            meta = _d(info.json())
            download = await self._http.get(_s(meta.get("url")), headers=self._headers())
            download.raise_for_status()
        except (httpx.HTTPError, ValueError) as exc:
            raise ConnectorError(f"could not download WhatsApp media {media_id}: {exc}") from exc
        content_type = _s(meta.get("mime_type")) or download.headers.get("content-type", "application/octet-stream")
        return download.content, content_type


def _graph_error(response: httpx.Response, body: dict[str, Any]) -> SendFailed:
    error = _d(body.get("error"))
    code = error.get("code")
    code_int = code if isinstance(code, int) else None
    details = _s(_d(error.get("error_data")).get("details"))
    message = _s(error.get("message")) or response.reason_phrase
    if details and details not in message:
        message = f"{message} ({details})"
    retryable = response.status_code == 429 or response.status_code >= 500 or code_int in RETRYABLE_CODES
    retry_after: float | None = None
    if retryable and (header := response.headers.get("retry-after")):
        try:
            retry_after = max(0.0, float(header))
        except ValueError:
            retry_after = None
    return SendFailed(
        f"Meta refused the message (HTTP {response.status_code}, code {code}): {message}",
        retryable=retryable,
        error_code=_s(code) or None,
        retry_after=retry_after,
    )


def build(settings: Settings) -> WhatsAppCloudConnector | None:
    """The connector from settings (WHATSAPP_*), or None when neither secret nor token is set."""
    if not settings.whatsapp_app_secret and not settings.whatsapp_access_token:
        return None
    return WhatsAppCloudConnector(
        app_secret=settings.whatsapp_app_secret or "",
        verify_token=settings.whatsapp_verify_token or "",
        access_token=settings.whatsapp_access_token or "",
        graph_base=settings.whatsapp_graph_base,
        phone_number_id=settings.whatsapp_phone_number_id,
    )
