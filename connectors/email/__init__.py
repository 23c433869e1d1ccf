"""The email channel: raw MIME in (webhook, SMTP listener, IMAP poller), SMTP out."""

from __future__ import annotations
