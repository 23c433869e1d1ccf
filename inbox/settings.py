"""Settings, read once from the environment (names are part of the contract in DESIGN.md)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/inbox.db"


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


def _count(env: dict[str, str], name: str, default: int) -> int:
    """`_int`, at least 1."""
    value = _int(env, name, default)
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, got {value}")
    return value


def _rate(env: dict[str, str], name: str, default: float) -> float:
    """A positive, finite number of events per second (`SystemExit` naming `name` else)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None
    if not 0 < value < float("inf"):
        raise SystemExit(f"{name} must be a positive number, got {raw!r}")
    return value


def _templates(raw: str | None) -> tuple[dict[str, Any], ...]:
    """INBOX_WHATSAPP_TEMPLATES: a JSON list of {"name", "language", "label", "variables"}."""
    if raw is None or not raw.strip():
        return ()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SystemExit(f"INBOX_WHATSAPP_TEMPLATES is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"] for t in data
    ):
        raise SystemExit('INBOX_WHATSAPP_TEMPLATES must be a JSON list of objects with a "name"')
    templates = []
    for t in data:
        variables = t.get("variables") or []
        if not isinstance(variables, list):
            raise SystemExit(f'INBOX_WHATSAPP_TEMPLATES: "variables" of {t["name"]!r} must be a list')
        templates.append({"name": t["name"], "language": t.get("language") or None,
                          "label": t.get("label") or t["name"], "variables": list(variables)})
    return tuple(templates)


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Build with `Settings.from_env()`; tests pass overrides."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    secret_key: str = ""
    public_url: str = "http://127.0.0.1:8000"
    default_region: str = "US"
    # A resolved conversation that hears from the customer again within this many hours
    # is reopened; later, a new one starts (Zendesk's default follow-up window is 4 days
    # after closing; Chatwoot reopens always. 72 h is a middle ground, configurable).
    reopen_window_hours: int = 72
    max_body_bytes: int = 1_000_000
    help_text: str = "Reply STOP to unsubscribe. A person from our team will answer here."
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_api_base: str | None = None
    twilio_default_from: str | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    whatsapp_access_token: str | None = None
    whatsapp_graph_base: str | None = None
    whatsapp_phone_number_id: str | None = None
    # Approved WhatsApp templates agents may send outside the 24-hour window
    # (INBOX_WHATSAPP_TEMPLATES: a JSON list of {"name", "language", "label", "variables"}).
    whatsapp_templates: tuple[dict[str, Any], ...] = ()
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_tls: bool = False
    smtp_from: str = "support@shop.example"
    email_addresses: tuple[str, ...] = ("support@shop.example",)
    email_secret: str | None = None
    # Inbound mail without a webhook: our own SMTP listener, or polling an IMAP mailbox.
    smtp_listen_host: str = "127.0.0.1"
    smtp_listen_port: int | None = None
    imap_host: str | None = None
    imap_port: int = 993
    imap_username: str | None = None
    imap_password: str | None = None
    imap_ssl: bool = True
    imap_starttls: bool = False
    imap_folder: str = "INBOX"
    imap_interval: float = 60.0
    # Outbox: first retry after `retry_base` seconds, doubling, capped at `retry_cap`,
    # giving up after `max_attempts` (Twilio/Meta recommend backing off on 429/5xx).
    outbox_retry_base: float = 2.0
    outbox_retry_cap: float = 300.0
    outbox_max_attempts: int = 8
    hub_queue_size: int = 1000
    # Per source address on /webhooks/* (providers burst on campaigns: be generous).
    webhook_burst: int = 300
    webhook_rate: float = 100.0
    # Per web-chat socket: a person types a few messages a second at most.
    chat_burst: int = 20
    chat_rate: float = 3.0
    heartbeat_seconds: float = 20.0
    # The shop site's key for signing a web-chat visitor's email (HMAC-SHA256, hex):
    # a signed email is the visitor's identity; unsigned, only a claim.
    webchat_identity_secret: str | None = None
    # INBOX_FAQ_SEMANTIC=1: re-rank FAQ matches with sentence embeddings (faq/semantic.py;
    # needs `pip install .[semantic]`).
    faq_semantic: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is the embedded SQLite database."""
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read settings from the environment; an unset secret key gets a per-install one."""
        e = dict(os.environ if env is None else env)
        database_url = e.get("INBOX_DATABASE_URL") or DEFAULT_DATABASE_URL
        secret = e.get("INBOX_SECRET_KEY") or _persisted_secret(database_url)
        addresses = tuple(
            a.strip().lower()
            for a in (e.get("INBOX_EMAIL_ADDRESSES") or "support@shop.example").split(",")
            if a.strip()
        )
        return cls(
            database_url=database_url,
            redis_url=e.get("INBOX_REDIS_URL") or None,
            secret_key=secret,
            public_url=(e.get("INBOX_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
            default_region=e.get("INBOX_DEFAULT_REGION") or "US",
            reopen_window_hours=_int(e, "INBOX_REOPEN_WINDOW_HOURS", 72),
            max_body_bytes=_int(e, "INBOX_MAX_BODY_BYTES", 1_000_000),
            help_text=e.get("INBOX_SMS_HELP_TEXT") or cls.help_text,
            twilio_account_sid=e.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=e.get("TWILIO_AUTH_TOKEN") or None,
            twilio_api_base=e.get("TWILIO_API_BASE") or None,
            twilio_default_from=e.get("TWILIO_FROM") or None,
            whatsapp_app_secret=e.get("WHATSAPP_APP_SECRET") or None,
            whatsapp_verify_token=e.get("WHATSAPP_VERIFY_TOKEN") or None,
            whatsapp_access_token=e.get("WHATSAPP_ACCESS_TOKEN") or None,
            whatsapp_graph_base=e.get("WHATSAPP_GRAPH_BASE") or None,
            whatsapp_phone_number_id=e.get("WHATSAPP_PHONE_NUMBER_ID") or None,
            whatsapp_templates=_templates(e.get("INBOX_WHATSAPP_TEMPLATES")),
            smtp_host=e.get("INBOX_SMTP_HOST") or None,
            smtp_port=_int(e, "INBOX_SMTP_PORT", 587),
            smtp_username=e.get("INBOX_SMTP_USERNAME") or None,
            smtp_password=e.get("INBOX_SMTP_PASSWORD") or None,
            smtp_starttls=_bool(e.get("INBOX_SMTP_STARTTLS"), True),
            smtp_tls=_bool(e.get("INBOX_SMTP_TLS"), False),
            smtp_from=e.get("INBOX_SMTP_FROM") or (addresses[0] if addresses else cls.smtp_from),
            email_addresses=addresses,
            email_secret=e.get("INBOX_EMAIL_SECRET") or None,
            smtp_listen_host=e.get("INBOX_SMTP_LISTEN_HOST") or "127.0.0.1",
            smtp_listen_port=_int(e, "INBOX_SMTP_LISTEN_PORT", 0) or None,
            imap_host=e.get("INBOX_IMAP_HOST") or None,
            imap_port=_int(e, "INBOX_IMAP_PORT", 993),
            imap_username=e.get("INBOX_IMAP_USERNAME") or None,
            imap_password=e.get("INBOX_IMAP_PASSWORD") or None,
            imap_ssl=_bool(e.get("INBOX_IMAP_SSL"), True),
            imap_starttls=_bool(e.get("INBOX_IMAP_STARTTLS"), False),
            imap_folder=e.get("INBOX_IMAP_FOLDER") or "INBOX",
            imap_interval=float(e.get("INBOX_IMAP_INTERVAL") or 60),
            faq_semantic=_bool(e.get("INBOX_FAQ_SEMANTIC")),
            webhook_rate=_rate(e, "INBOX_WEBHOOK_RATE", cls.webhook_rate),
            webhook_burst=_count(e, "INBOX_WEBHOOK_BURST", cls.webhook_burst),
            webchat_identity_secret=e.get("INBOX_WEBCHAT_IDENTITY_SECRET") or None,
        )


def _persisted_secret(database_url: str) -> str:
    """A random secret kept next to a SQLite database, so sessions survive restarts.

    Production sets INBOX_SECRET_KEY; for the zero-setup default we keep one in ./var.
    """
    if not database_url.startswith("sqlite"):
        raise SystemExit("INBOX_SECRET_KEY must be set when the database is not SQLite")
    path = Path("var") / "secret_key"
    try:
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        path.write_text(value)
        path.chmod(0o600)
        return value
    except OSError:
        return secrets.token_urlsafe(48)
