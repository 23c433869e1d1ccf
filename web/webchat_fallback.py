"""A web-chat reply for a visitor who has left goes to the email they left in the chat.

Wired by the composition root: it needs the store (the visitor's identities) and the
email connector, which the web-chat connector knows nothing of.
"""

from __future__ import annotations

from typing import Any

from inbox import store
from inbox.models import Contact, Conversation
from inbox.runtime import Runtime
from inbox.types import Outbound, ThreadHints

FOOTER = "\n\n--\nYou left this address in our chat, so we are sending our answer here too."


def email_fallback(rt: Runtime) -> Any:
    """An `OfflineFallback` that mails the reply to the email the visitor left last (the
    address they typed in the chat, else their latest email identity)."""

    async def send(outbound: Outbound) -> str | None:
        email: Any = rt.connectors.get("email")
        if email is None or getattr(email, "smtp", None) is None:
            return None
        async with rt.sessions() as session:
            conv = await session.get(Conversation, outbound.conversation_id)
            if conv is None:
                return None
            contact = await session.get(Contact, conv.contact_id)
            identities = await store.identities_of(session, contact_id=conv.contact_id)
        addresses = [i.raw or i.value for i in identities if i.kind == "email"]
        if contact is not None and contact.claimed_email:
            addresses.append(contact.claimed_email)  # what they typed last counts most
        if not addresses:
            return None
        mail = Outbound(
            message_id=outbound.message_id,
            conversation_id=outbound.conversation_id,
            channel="email",
            provider="email",
            to=addresses[-1],
            from_address=None,
            text=outbound.text + FOOTER,
            thread=ThreadHints(subject="Your chat with us"),
            idempotency_key=outbound.idempotency_key,
            display_name=contact.name if contact else None,
        )
        result = await email.send(mail)
        return str(result.provider_message_id)

    return send
