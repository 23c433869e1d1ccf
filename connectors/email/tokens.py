"""Reply tokens: `support+<token>@shop.example` names a conversation and cannot be guessed.

A token is `c<conversation id>-<16 base32 chars of HMAC-SHA256>` (80 bits of MAC), all
lower case and local-part safe, because some MTAs lower-case local parts. The key is
derived from the configured secret with a purpose label, so the same secret may also
authenticate the webhook without the two uses ever producing the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

__all__ = ["conversation_from_token", "reply_token_for"]

_PURPOSE = b"inbox/email/reply-token/v1"
_MAC_CHARS = 16
_TOKEN = re.compile(r"^c(\d{1,19})-([a-z2-7]{%d})$" % _MAC_CHARS)


def _mac(conversation_id: int, secret: str) -> str:
    key = hmac.new(secret.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()
    digest = hmac.new(key, str(conversation_id).encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:_MAC_CHARS]


def reply_token_for(conversation_id: int, *, secret: str) -> str:
    """The token for `conversation_id`; the same inputs always give the same token."""
    if conversation_id < 0:
        raise ValueError(f"expected a conversation id >= 0, got {conversation_id}")
    if not secret:
        raise ValueError("expected a secret to sign reply tokens with, got an empty one")
    return f"c{conversation_id}-{_mac(conversation_id, secret)}"


def conversation_from_token(token: str | None, *, secret: str) -> int | None:
    """The conversation id a token names, or None if it is malformed or forged."""
    if not token or not secret:
        return None
    match = _TOKEN.match(token.strip().lower())
    if match is None:
        return None
    conversation_id = int(match.group(1))
    if hmac.compare_digest(match.group(2), _mac(conversation_id, secret)):
        return conversation_id
    return None
