"""Twilio: SMS and WhatsApp (``whatsapp:`` addresses) in and out.

Inbound: Twilio POSTs a form to `/webhooks/twilio`, signed with X-Twilio-Signature over the
exact public URL plus the sorted form fields (checked with the `twilio` library's
`RequestValidator`). `parse` turns it into one `Inbound`; `parse_status` turns a status
callback into one `StatusUpdate`. Outbound: `send` calls the Messages API through the real
`twilio` client, with an async HTTP client that can be pointed at a local fake
(`api_base`, from TWILIO_API_BASE).

Addresses leave this module without the ``whatsapp:`` prefix; `Inbound.channel` says which
channel it was. `Inbound.meta` keys this module may set: ``wa_id``, ``whatsapp_user_id``,
``parent_whatsapp_user_id``, ``username``, ``messaging_service_sid``, ``message_type``,
``location``, ``button``, ``list_reply``, ``referral``, ``reply_to_provider_id``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import json
import logging
import re
from contextvars import ContextVar
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse, urlsplit, urlunsplit

import aiohttp

# `Client.messages` imports the Messages API's modules (about 80) on first use: ~100 ms
# of the event loop at the first send after a start. Imported with this module instead.
import twilio.rest.api.v2010.account  # noqa: F401
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.rest import Client

from connectors.whatsapp_window import ensure_free_form_allowed
from inbox.errors import SendFailed, SignatureInvalid, UnsupportedPayload
from inbox.forms import parse_form
from inbox.settings import Settings
from inbox.types import (
    FLAG_HELP,
    FLAG_OPT_IN,
    FLAG_OPT_OUT,
    Attachment,
    Inbound,
    Outbound,
    SendResult,
    StatusUpdate,
    TemplateRef,
    WebhookRequest,
)

log = logging.getLogger(__name__)

WHATSAPP_PREFIX = "whatsapp:"
_VALIDATOR_ALGORITHMS = frozenset({HMAC_SHA1, HMAC_SHA256})

# Twilio's default keywords, matched case-insensitively against the whole trimmed body
# (https://help.twilio.com/articles/223134027). Twilio itself answers and enforces them
# on long codes; we record them so no bot or agent message goes to an opted-out number.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

# Twilio MessageStatus -> our DELIVERY_STATES (https://www.twilio.com/docs/messaging/api/message-resource#message-status-values).
STATUS_MAP: dict[str, str] = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
# Statuses of *inbound* messages: a status callback with one of these carries nothing for us.
INBOUND_STATUSES = frozenset({"receiving", "received"})

# Short reasons for the error codes agents meet most (https://www.twilio.com/docs/api/errors),
# used when Twilio sends an ErrorCode without an ErrorMessage.
ERROR_REASONS: dict[str, str] = {
    "21211": "Invalid 'To' phone number",
    "21408": "Sending to this region is not enabled",
    "21602": "Message body is required",
    "21610": "Recipient has unsubscribed (replied STOP)",
    "21614": "'To' number is not a valid mobile number",
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset (off or out of coverage)",
    "30004": "Message blocked by the recipient or carrier",
    "30005": "Unknown destination handset (number does not exist)",
    "30006": "Landline or unreachable carrier",
    "30007": "Filtered by the carrier as spam",
    "30008": "Unknown error from the carrier",
    "30032": "Toll-free number is not verified",
    "30034": "Sender number is not registered for A2P 10DLC",
    "63003": "Recipient is not reachable on WhatsApp",
    "63016": "Outside the WhatsApp 24-hour window: use an approved template",
    "63018": "WhatsApp rate limit exceeded",
    "63024": "Invalid WhatsApp recipient",
    "63049": "Meta chose not to deliver this WhatsApp marketing message",
}

# Send errors: codes that mean "try again later" even on a 4xx, and "recipient opted out".
RETRYABLE_CODES = frozenset({20429, 63018})
OPTED_OUT_CODES = frozenset({21610})

_PHONE = re.compile(r"\+?[0-9]{1,20}")
# Form fields copied as they are into `Inbound.meta`, under these keys.
_META_FIELDS = (
    ("WaId", "wa_id"),
    ("ExternalUserId", "whatsapp_user_id"),
    ("ParentExternalUserId", "parent_whatsapp_user_id"),
    ("ProfileUsername", "username"),
    ("MessagingServiceSid", "messaging_service_sid"),
    ("MessageType", "message_type"),
    ("OriginalRepliedMessageSid", "reply_to_provider_id"),
)
_REFERRAL_KEY = re.compile(r"(?<!^)(?=[A-Z])")

# Longest identifiers and addresses we accept (the store's column sizes, inbox/models.py);
# Twilio's own are far shorter (SIDs are 34 characters, numbers at most 15 digits).
MAX_ID = 500
MAX_ADDRESS = 320
MAX_ERROR_CODE = 50
MAX_ERROR_TEXT = 1000

# Retry-After of the last Twilio response in this task: TwilioRestException drops headers.
_retry_after: ContextVar[float | None] = ContextVar("twilio_retry_after", default=None)


class RebasedAsyncHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """The `twilio` library's aiohttp client, optionally aimed at another base URL.

    With `api_base` (e.g. a local fake), every request keeps its path and query but goes
    to that scheme/host (and path prefix) instead of https://*.twilio.com. It also notes
    each response's Retry-After header for the caller. Create it inside a running event
    loop (aiohttp's session needs one).
    """

    def __init__(self, api_base: str | None = None, *, timeout: float = 30.0) -> None:
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/") if api_base else None

    def rebase(self, url: str) -> str:
        """`url` moved onto `api_base` (unchanged when no base is set)."""
        if not self.api_base:
            return url
        base, target = urlsplit(self.api_base), urlsplit(url)
        return urlunsplit(
            (base.scheme, base.netloc, base.path + target.path, target.query, target.fragment)
        )

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if auth is not None:  # as a header: aiohttp deprecates its BasicAuth helper
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
        response = await super().request(
            method, self.rebase(url), params=params, data=data, headers=headers, auth=None,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        _retry_after.set(_parse_retry_after((response.headers or {}).get("Retry-After")))
        return response


def _parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP-date: Twilio sends seconds, so we do not parse dates


class _FormParams(dict[str, list[str]]):
    """Form fields with every value of a repeated key, in the shape RequestValidator reads."""

    # RequestValidator.get_values tries `getall` (werkzeug's name) first: answering it
    # spares an AttributeError per field per signature computed.
    def getall(self, key: str) -> list[str]:
        return self[key]

    getlist = getall


def form_of(request: WebhookRequest) -> dict[str, list[str]]:
    """The request's form fields: `request.form`, else the url-encoded body decoded here."""
    if request.form:
        return request.form
    content_type = (request.header("content-type") or "").lower()
    if request.body and (not content_type or "x-www-form-urlencoded" in content_type):
        try:
            return parse_form(request.body.decode("utf-8"))
        except UnicodeDecodeError:
            return {}
    return {}


def _without_nul(form: dict[str, list[str]]) -> dict[str, list[str]]:
    """The form with NUL characters removed from every key and value (the form itself
    when it has none: read it, never change it).

    Nothing reads a NUL on purpose, and PostgreSQL refuses one in a text column (a 500
    instead of a stored message). Signatures are checked on the form as received.
    """
    if "\x00" not in "".join(form) and "\x00" not in "".join(map("".join, form.values())):
        return form  # the usual case: nothing to copy
    return {k.replace("\x00", ""): [v.replace("\x00", "") for v in vs] for k, vs in form.items()}


def _bounded(value: str, limit: int, what: str) -> str:
    """`value`, or UnsupportedPayload when it is longer than any real one can be."""
    if len(value) > limit:
        raise UnsupportedPayload(f"{what} is {len(value)} characters long; at most {limit} expected")
    return value


def _first(form: dict[str, list[str]], key: str) -> str:
    values = form.get(key)
    return values[0] if values else ""


def _strip_prefix(address: str) -> tuple[str, str | None]:
    """(address without channel prefix, prefix or None); e.g. "whatsapp:+1..." -> ("+1...", "whatsapp")."""
    scheme, sep, rest = address.partition(":")
    if sep and scheme and scheme.isalpha():
        return rest, scheme.lower()
    return address, None


@functools.lru_cache(maxsize=64)
def _as_parsed(url: str) -> str:
    """`url` as RequestValidator sees it (`urlparse(url).geturl()`); a webhook's URL is
    the same on every request, so it is parsed once."""
    return urlparse(url).geturl()


def _url_variants(url: str) -> list[str]:
    """The URL as given plus its `'`/`%27` spellings: Twilio's SDKs treat them as equal."""
    variants = [url, url.replace("%27", "'"), url.replace("'", "%27")]
    return list(dict.fromkeys(variants))


def location_text(location: dict[str, Any]) -> str:
    """A readable line for a shared location, with a map link an agent can click."""
    lat, lon = location.get("latitude"), location.get("longitude")
    label = ", ".join(str(p) for p in (location.get("label"), location.get("address")) if p)
    where = f"{label} " if label else ""
    return f"📍 Location: {where}({lat}, {lon}) https://maps.google.com/?q={lat},{lon}"


class TwilioConnector:
    """SMS and WhatsApp through Twilio. See the module docstring for the meta keys set."""

    provider = "twilio"
    channels: tuple[str, ...] = ("sms", "whatsapp")

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_base: str | None = None,
        status_callback_url: str | None = None,
        help_text: str = "",
        default_from: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_base = api_base
        self.status_callback_url = status_callback_url
        # What the core answers a HELP keyword with (Inbound.flags contains FLAG_HELP).
        self.help_text = help_text
        self.default_from = default_from
        self.timeout = timeout
        self._validator = RequestValidator(auth_token)
        self._http: RebasedAsyncHttpClient | None = None
        self._client: Client | None = None

    # -- inbound ---------------------------------------------------------------------
    def verify(self, request: WebhookRequest) -> None:
        """Raise SignatureInvalid unless X-Twilio-Signature matches this request.

        Form bodies: the signature covers `request.url` plus every form field (repeated
        keys kept). JSON bodies: the URL carries `bodySHA256`, which must equal the SHA-256
        of the raw body; a JSON body without it is refused (it would be unsigned). The URL
        is tried with and without the default port, as Twilio's SDKs do.
        """
        signature = request.header("x-twilio-signature")
        if not signature:
            raise SignatureInvalid("missing X-Twilio-Signature header")
        algorithm = get_signature_algorithm(request.header("x-twilio-webhooks-signature-settings"))
        # Parsed only when it may hold bodySHA256 (a form webhook's URL has no query).
        query = parse_qs(urlsplit(request.url).query) if "bodySHA256" in request.url else {}
        params: _FormParams | str
        if "bodySHA256" in query:
            try:
                params = request.body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SignatureInvalid("body is not UTF-8") from exc
        elif "json" in (request.header("content-type") or "").lower():
            raise SignatureInvalid("JSON body without bodySHA256: the body is not signed")
        else:
            params = _FormParams(form_of(request))
        if isinstance(params, dict) and self._signs_as_given(request.url, params, signature,
                                                             algorithm):
            return
        for url in _url_variants(request.url):
            if self._validator.validate(url, params, signature, algorithm):
                return
        raise SignatureInvalid(f"X-Twilio-Signature does not match {request.url}")

    def _signs_as_given(self, url: str, params: _FormParams, signature: str,
                        algorithm: str | None) -> bool:
        """Whether `signature` is the form's signature over `url` exactly as received.

        `RequestValidator.validate` accepts this one among others (the URL with and
        without its port) but always computes two HMACs; this common case needs one.
        A mismatch proves nothing: the caller then tries every variant with `validate`.
        """
        if algorithm is not None and algorithm.upper() not in _VALIDATOR_ALGORITHMS:
            return False
        expected = self._validator.compute_signature(_as_parsed(url), params, algorithm)
        return hmac.compare_digest(expected.encode(), signature.encode())

    def parse(self, request: WebhookRequest) -> list[Inbound]:
        """One Inbound for an incoming SMS/MMS or WhatsApp message; [] for a status callback.

        Raises UnsupportedPayload without a message SID or a From, or for a channel other
        than SMS and WhatsApp (e.g. ``messenger:``).
        """
        received = form_of(request)
        form = _without_nul(received)
        sid = _first(form, "MessageSid") or _first(form, "SmsMessageSid") or _first(form, "SmsSid")
        raw_from = _first(form, "From")
        if not sid or not raw_from:
            raise UnsupportedPayload(
                f"expected a Twilio message webhook with MessageSid and From, got fields "
                f"{sorted(form)[:20]}"
            )
        status = _first(form, "MessageStatus")
        if status and status not in INBOUND_STATUSES:
            return []  # a status callback sent to the message URL
        sender, prefix = _strip_prefix(raw_from)
        if prefix not in (None, "whatsapp"):
            raise UnsupportedPayload(f"Twilio channel {prefix!r} is not supported")
        channel = "whatsapp" if prefix == "whatsapp" else "sms"
        recipient = _strip_prefix(_first(form, "To"))[0] or None
        _bounded(sid, MAX_ID, "MessageSid")
        _bounded(sender, MAX_ADDRESS, "From")
        _bounded(recipient or "", MAX_ADDRESS, "To")
        text = _first(form, "Body").replace("\x00", "")
        meta = self._meta(form)
        if not text.strip():
            text = self._fallback_text(meta) or text
        return [
            Inbound(
                channel=channel,
                provider=self.provider,
                provider_message_id=sid,
                sender=sender,
                sender_kind="phone" if channel == "sms" or _PHONE.fullmatch(sender) else "whatsapp_user",
                text=text,
                display_name=_first(form, "ProfileName").strip() or None,
                recipient=recipient,
                attachments=self._attachments(form),
                flags=self._keyword_flags(channel, text),
                meta=meta,
                # As received (NULs too: the audit copy is JSON, which can hold them).
                raw={k: v[0] if len(v) == 1 else list(v) for k, v in received.items()},
            )
        ]

    def _attachments(self, form: dict[str, list[str]]) -> list[Attachment]:
        try:
            declared = int(_first(form, "NumMedia") or 0)
        except ValueError:
            declared = 0
        found: list[Attachment] = []
        index = 0
        while index < declared or _first(form, f"MediaUrl{index}"):
            url = _first(form, f"MediaUrl{index}")
            if url:
                content_type = _first(form, f"MediaContentType{index}") or "application/octet-stream"
                found.append(Attachment(content_type=content_type, url=url))
            index += 1
            if index > 50:  # Twilio allows 10 media per message; never loop on garbage
                break
        return found

    def _meta(self, form: dict[str, list[str]]) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        for field, key in _META_FIELDS:
            if value := _first(form, field):
                meta[key] = value
        if _first(form, "Latitude") and _first(form, "Longitude"):
            location: dict[str, Any] = {}
            for field in ("Latitude", "Longitude"):
                try:
                    location[field.lower()] = float(_first(form, field))
                except ValueError:
                    location[field.lower()] = _first(form, field)
            for field in ("Address", "Label"):
                if value := _first(form, field):
                    location[field.lower()] = value
            meta["location"] = location
        if _first(form, "ButtonText") or _first(form, "ButtonPayload"):
            meta["button"] = {"text": _first(form, "ButtonText"), "payload": _first(form, "ButtonPayload")}
        if _first(form, "ListId") or _first(form, "ListTitle"):
            meta["list_reply"] = {"id": _first(form, "ListId"), "title": _first(form, "ListTitle")}
        referral = {
            _REFERRAL_KEY.sub("_", key.removeprefix("Referral")).lower(): values[0]
            for key, values in form.items()
            if key.startswith("Referral") and values and values[0]
        }
        if set(referral) - {"num_media"}:  # ReferralNumMedia=0 alone is on every message
            meta["referral"] = referral
        return meta

    @staticmethod
    def _fallback_text(meta: dict[str, Any]) -> str:
        if "location" in meta:
            return location_text(meta["location"])
        if "button" in meta:
            return str(meta["button"]["text"] or meta["button"]["payload"])
        if "list_reply" in meta:
            return str(meta["list_reply"]["title"] or meta["list_reply"]["id"])
        return ""

    @staticmethod
    def _keyword_flags(channel: str, text: str) -> frozenset[str]:
        if channel != "sms":
            return frozenset()
        word = text.strip().upper()
        if word in OPT_OUT_KEYWORDS:
            return frozenset({FLAG_OPT_OUT})
        if word in OPT_IN_KEYWORDS:
            return frozenset({FLAG_OPT_IN})
        if word in HELP_KEYWORDS:
            return frozenset({FLAG_HELP})
        return frozenset()

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]:
        """One StatusUpdate for a message status callback; [] for an inbound-status or unknown one.

        Raises UnsupportedPayload without MessageSid or MessageStatus. `error_text` is
        Twilio's ErrorMessage, else a short reason for well-known codes, else
        "Twilio error <code>".
        """
        form = _without_nul(form_of(request))
        sid = _first(form, "MessageSid") or _first(form, "SmsSid")
        twilio_status = (_first(form, "MessageStatus") or _first(form, "SmsStatus")).lower()
        if not sid or not twilio_status:
            raise UnsupportedPayload(
                f"expected a Twilio status callback with MessageSid and MessageStatus, got "
                f"fields {sorted(form)[:20]}"
            )
        _bounded(sid, MAX_ID, "MessageSid")
        status = STATUS_MAP.get(twilio_status)
        if status is None:
            if twilio_status not in INBOUND_STATUSES:
                log.warning("ignoring unknown Twilio MessageStatus %r for %s", twilio_status, sid)
            return []
        code = _first(form, "ErrorCode") or None
        if code == "0":
            code = None
        text = _first(form, "ErrorMessage") or None
        if code and not text:
            text = ERROR_REASONS.get(code, f"Twilio error {code}")
        if twilio_status == "canceled" and not text:
            text = "Canceled before sending"
        to, prefix = _strip_prefix(_first(form, "To"))
        from_prefix = _strip_prefix(_first(form, "From"))[1]
        whatsapp = "whatsapp" in (prefix, from_prefix)
        return [
            StatusUpdate(
                channel="whatsapp" if whatsapp else "sms",
                provider=self.provider,
                provider_message_id=sid,
                status=status,
                error_code=code[:MAX_ERROR_CODE] if code else None,
                error_text=text[:MAX_ERROR_TEXT] if text else None,
                recipient=(to or None) and to[:MAX_ADDRESS],
            )
        ]

    # -- outbound --------------------------------------------------------------------
    def check_reply(
        self,
        *,
        channel: str,
        last_customer_at: datetime | None,
        now: datetime | None = None,
        template: TemplateRef | None = None,
    ) -> None:
        """Raise Conflict for a free-form WhatsApp reply outside the 24-hour window.

        SMS has no window. Called by the core before it stores a reply (Twilio would
        otherwise refuse it later with error 63016).
        """
        if channel == "whatsapp":
            ensure_free_form_allowed(last_customer_at, now, template=template)

    def _rest(self) -> Client:
        if self._client is None:
            self._http = RebasedAsyncHttpClient(self.api_base, timeout=self.timeout)
            self._client = Client(self.account_sid, self.auth_token, http_client=self._http)
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP session (safe to call twice, or before any send)."""
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close()

    def send_params(self, outbound: Outbound) -> dict[str, Any]:
        """The keyword arguments `send` passes to `messages.create_async`.

        Raises SendFailed (not retryable) when no sender is configured, the message is
        empty, or an attachment has no public URL (Twilio fetches media by URL).
        """
        sender = outbound.from_address or self.default_from
        if not sender:
            raise SendFailed("no Twilio sender: set default_from or pass from_address", retryable=False)
        whatsapp = outbound.channel == "whatsapp"

        def address(value: str) -> str:
            bare = _strip_prefix(value)[0]
            return f"{WHATSAPP_PREFIX}{bare}" if whatsapp else bare

        params: dict[str, Any] = {"to": address(outbound.to)}
        if sender.startswith("MG"):
            params["messaging_service_sid"] = sender
        else:
            params["from_"] = address(sender)
        media: list[str] = []
        for attachment in outbound.attachments:
            if not attachment.url or not attachment.url.startswith(("https://", "http://")):
                raise SendFailed(
                    f"attachment {attachment.filename or attachment.content_type!r} has no public "
                    "URL; Twilio can only send media it can download",
                    retryable=False,
                )
            media.append(attachment.url)
        if outbound.template is not None:
            params["content_sid"] = outbound.template.name
            if outbound.template.variables:
                params["content_variables"] = json.dumps(outbound.template.variables)
        elif outbound.text:
            params["body"] = outbound.text
        if media:
            params["media_url"] = media
        if "body" not in params and "content_sid" not in params and not media:
            raise SendFailed("empty message: no text, media or template", retryable=False, error_code="21602")
        if self.status_callback_url:
            params["status_callback"] = self.status_callback_url
        return params

    async def send(self, outbound: Outbound) -> SendResult:
        """Send through Twilio's Messages API; returns the SM... SID and its mapped status.

        Errors become SendFailed: 429, 5xx, 20429 and network failures are retryable
        (with Twilio's Retry-After when it sent one); 21610 sets `opted_out`; every other
        4xx (21211/21614 invalid number, 63016 outside the WhatsApp window, ...) is final
        and keeps Twilio's code.
        """
        params = self.send_params(outbound)
        client = self._rest()
        _retry_after.set(None)
        try:
            message = await client.messages.create_async(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._send_failed(exc) from exc
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise SendFailed(f"network error talking to Twilio: {exc!r}", retryable=True) from exc
        except TwilioException as exc:  # e.g. an unreadable response: the outcome is unknown
            raise SendFailed(f"unexpected answer from Twilio: {exc}", retryable=True) from exc
        if not message.sid:
            raise SendFailed("Twilio accepted the message but returned no SID", retryable=True)
        return SendResult(
            provider_message_id=message.sid,
            status=STATUS_MAP.get(str(message.status or "queued"), "queued"),
        )

    @staticmethod
    def _send_failed(exc: TwilioRestException | TwilioServiceException) -> SendFailed:
        status = int(exc.status or 0)
        code = int(exc.code) if exc.code is not None else None
        detail = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
        reason = f"Twilio refused the message (HTTP {status}, code {code}): {detail}"
        if code in OPTED_OUT_CODES:
            return SendFailed(reason, retryable=False, error_code=str(code), opted_out=True)
        retryable = status == 429 or status >= 500 or code in RETRYABLE_CODES
        return SendFailed(
            reason,
            retryable=retryable,
            error_code=str(code) if code is not None else None,
            retry_after=_retry_after.get() if retryable else None,
        )

    def media_auth(self, url: str) -> tuple[str, str] | None:
        """HTTP basic credentials for downloading `url`, when it is Twilio-hosted media.

        Twilio media URLs (api.twilio.com) need the account SID and auth token when the
        account enforces HTTP auth on media; other hosts get None (never our secret).
        """
        host = (urlsplit(url).hostname or "").lower()
        if host == "api.twilio.com" or host.endswith(".twilio.com"):
            return (self.account_sid, self.auth_token)
        return None


def build(settings: Settings) -> TwilioConnector | None:
    """The connector from settings (TWILIO_*), or None when Twilio is not configured.

    Status callbacks are requested at INBOX_PUBLIC_URL + /webhooks/twilio/status.
    """
    if not settings.twilio_account_sid or not settings.twilio_auth_token:
        return None
    return TwilioConnector(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        api_base=settings.twilio_api_base,
        status_callback_url=settings.public_url.rstrip("/") + "/webhooks/twilio/status",
        help_text=settings.help_text,
        default_from=settings.twilio_default_from,
    )
