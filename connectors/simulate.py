"""`inbox simulate CHANNEL`: play a customer against a running server.

Each channel's request is built the way its provider builds it and signed with the
configured secret (TWILIO_AUTH_TOKEN, WHATSAPP_APP_SECRET, INBOX_EMAIL_SECRET), so the
server's real verification path runs. `make run` starts the server with demo secrets
(see `DEMO_PROVIDER_ENV`) that this command falls back to.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import sys
import time
import uuid
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from inbox.settings import Settings

# Provider secrets for the local demo only (`inbox serve --demo-providers`): they let
# `inbox simulate` sign requests with no provider account. Never used otherwise.
DEMO_PROVIDER_ENV = {
    "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
    "TWILIO_AUTH_TOKEN": "demo-twilio-auth-token",
    "TWILIO_FROM": "+15550009999",
    "WHATSAPP_APP_SECRET": "demo-whatsapp-app-secret",
    "WHATSAPP_VERIFY_TOKEN": "demo-verify-token",
    "WHATSAPP_ACCESS_TOKEN": "demo-access-token",
    "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
    "INBOX_EMAIL_SECRET": "demo-email-secret",
}


def _secret(settings: Settings, attr: str, env: str) -> str:
    value = getattr(settings, attr)
    return str(value) if value else DEMO_PROVIDER_ENV[env]


def _base(args: argparse.Namespace, settings: Settings) -> str:
    return (args.url or settings.public_url).rstrip("/")


def twilio_form(*, sender: str, recipient: str, text: str, whatsapp: bool, name: str | None,
                account_sid: str) -> dict[str, str]:
    """The form fields Twilio posts for an inbound SMS or WhatsApp message."""
    sid = "SM" + uuid.uuid4().hex
    prefix = "whatsapp:" if whatsapp else ""
    form = {
        "ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid,
        "SmsStatus": "received", "Body": text, "To": prefix + recipient, "NumSegments": "1",
        "MessageSid": sid, "AccountSid": account_sid, "From": prefix + sender, "ApiVersion": "2010-04-01",
    }
    if whatsapp:
        form["WaId"] = sender.lstrip("+")
        form["ProfileName"] = name or ""
    return form


async def _post_twilio(args: argparse.Namespace, settings: Settings, *, whatsapp: bool) -> int:
    base = _base(args, settings)
    token = _secret(settings, "twilio_auth_token", "TWILIO_AUTH_TOKEN")
    form = twilio_form(sender=args.sender or "+15550102030",
                       recipient=args.recipient or settings.twilio_default_from or DEMO_PROVIDER_ENV["TWILIO_FROM"],
                       text=args.text, whatsapp=whatsapp, name=args.name,
                       account_sid=_secret(settings, "twilio_account_sid", "TWILIO_ACCOUNT_SID"))
    # Twilio signs the URL it calls; here that is the URL we post to.
    signed_url = base + "/webhooks/twilio"
    signature = RequestValidator(token).compute_signature(signed_url, form)
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(base + "/webhooks/twilio", content=urlencode(form),
                                 headers={"X-Twilio-Signature": signature,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    print(f"POST /webhooks/twilio -> {resp.status_code} {resp.text[:200]}")
    return 0 if resp.status_code < 300 else 1


def meta_payload(*, sender: str, text: str, name: str | None, phone_number_id: str,
                 display_number: str) -> dict[str, Any]:
    """The JSON Meta posts for one inbound WhatsApp text message."""
    wa_id = sender.lstrip("+")
    return {"object": "whatsapp_business_account", "entry": [{
        "id": "0", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": display_number.lstrip("+"),
                         "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": name or "Customer"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": "wamid." + uuid.uuid4().hex,
                          "timestamp": str(int(time.time())), "type": "text",
                          "text": {"body": text}}],
        }}]}]}


async def _post_meta(args: argparse.Namespace, settings: Settings) -> int:
    base = _base(args, settings)
    secret = _secret(settings, "whatsapp_app_secret", "WHATSAPP_APP_SECRET")
    body = json.dumps(meta_payload(
        sender=args.sender or "+15550102030", text=args.text, name=args.name,
        phone_number_id=settings.whatsapp_phone_number_id or DEMO_PROVIDER_ENV["WHATSAPP_PHONE_NUMBER_ID"],
        display_number=args.recipient or "+15550009999")).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(base + "/webhooks/whatsapp", content=body, headers={
            "X-Hub-Signature-256": signature, "Content-Type": "application/json"})
    print(f"POST /webhooks/whatsapp -> {resp.status_code} {resp.text[:200]}")
    return 0 if resp.status_code < 300 else 1


def demo_mail(*, sender: str, recipient: str, subject: str, text: str, name: str | None) -> bytes:
    """A plain RFC 5322 message as a customer's mail client would send it."""
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>" if name else sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(__import__("datetime").datetime.now().astimezone())
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "example.com")
    msg.set_content(text)
    return bytes(msg)


async def _post_email(args: argparse.Namespace, settings: Settings) -> int:
    base = _base(args, settings)
    secret = _secret(settings, "email_secret", "INBOX_EMAIL_SECRET")
    raw = demo_mail(sender=args.sender or "customer@example.com",
                    recipient=args.recipient or (settings.email_addresses or ("support@shop.example",))[0],
                    subject=args.subject or "Question", text=args.text, name=args.name)
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(base + "/webhooks/email", content=raw, headers={
            "Authorization": f"Bearer {secret}", "Content-Type": "message/rfc822"})
    print(f"POST /webhooks/email -> {resp.status_code} {resp.text[:200]}")
    return 0 if resp.status_code < 300 else 1


async def _webchat(args: argparse.Namespace, settings: Settings) -> int:
    import websockets

    url = _base(args, settings).replace("http://", "ws://").replace("https://", "wss://") + "/ws/chat"
    if args.token:
        url += "?token=" + args.token
    async with websockets.connect(url) as ws:
        welcome = json.loads(await ws.recv())
        print(f"visitor token: {welcome.get('token')}  (resume with --token)")
        await ws.send(json.dumps({"type": "message", "text": args.text, "client_id": uuid.uuid4().hex}))
        deadline = time.monotonic() + args.wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=left))
            except TimeoutError:
                break
            if frame.get("type") == "message":
                m = frame["message"]
                print(f"[{m.get('author')}] {m.get('text')}")
            elif frame.get("type") == "error":
                print(f"error: {frame.get('detail')}", file=sys.stderr)
                return 1
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point for `inbox simulate` (resolved by import string from the CLI)."""
    try:
        if args.channel == "webchat":
            return asyncio.run(_webchat(args, settings))
        if args.channel == "sms":
            return asyncio.run(_post_twilio(args, settings, whatsapp=False))
        if args.channel == "whatsapp":
            if getattr(args, "meta", False):
                return asyncio.run(_post_meta(args, settings))
            return asyncio.run(_post_twilio(args, settings, whatsapp=True))
        return asyncio.run(_post_email(args, settings))
    except (OSError, httpx.HTTPError) as exc:
        print(f"inbox simulate: cannot reach the server ({exc}); is `inbox serve` running?",
              file=sys.stderr)
        return 1


__all__ = ["DEMO_PROVIDER_ENV", "run"]
