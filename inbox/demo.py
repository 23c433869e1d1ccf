"""Demo data, seeded through the real pipeline (not raw SQL), safe to run twice."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

from inbox import pipeline, store
from inbox.agents import create_agent, issue_token
from inbox.runtime import Runtime
from inbox.types import Inbound, ThreadHints, utcnow

DEMO_PASSWORD = "demo-password"
AGENTS = [
    ("admin@demo.shop", "Ada Admin", "admin"),
    ("sam@demo.shop", "Sam Support", "agent"),
    ("fay@demo.shop", "Fay FAQ", "faq_editor"),
]
# Extra demo seeders in outer packages (FAQ entries, orders), by import string.
EXTRA_SEEDERS = ("faq.demo:seed", "inbox.orders_demo:seed")


def _messages() -> list[Inbound]:
    now = utcnow()
    at = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    return [
        Inbound(channel="sms", provider="twilio", provider_message_id="demo-sms-1",
                sender="+15550102030", sender_kind="phone", recipient="+15550009999",
                text="Hi, where is my order #1001? It was supposed to arrive yesterday.",
                received_at=at(90)),
        Inbound(channel="whatsapp", provider="twilio", provider_message_id="demo-wa-1",
                sender="+15550102030", sender_kind="phone", recipient="+15550009999",
                display_name="Maria Lopez",
                text="Hola! Same person as the SMS: can I change the delivery address?",
                received_at=at(60)),
        Inbound(channel="email", provider="email", provider_message_id="<demo-1@mail.example>",
                sender="jonas.becker@mail.example", sender_kind="email",
                recipient="support@shop.example", display_name="Jonas Becker",
                text="Hello,\n\nthe jacket I ordered (order 1002) is too small. How do I exchange it?\n\nJonas",
                thread=ThreadHints(message_id="<demo-1@mail.example>", subject="Exchange for order 1002"),
                meta={"subject": "Exchange for order 1002"}, received_at=at(45)),
        Inbound(channel="webchat", provider="webchat", provider_message_id="v_demo_visitor:1",
                sender="v_demo_visitor", sender_kind="webchat", recipient="webchat",
                text="Do you ship to Canada?", received_at=at(20)),
        Inbound(channel="whatsapp", provider="twilio", provider_message_id="demo-wa-2",
                sender="+821012345678", sender_kind="phone", recipient="+15550009999",
                display_name="김민지", text="안녕하세요, 반품하려면 어떻게 해야 하나요?",
                received_at=at(10)),
    ]


async def seed(rt: Runtime) -> list[str]:
    """Create demo agents, customers and conversations; returns the login lines to print."""
    tokens: dict[str, str] = {}
    for email, name, role in AGENTS:
        async with rt.sessions() as session:
            existing = await store.agent_by_email(session, email=email)
        if existing is None:
            _agent, token = await create_agent(rt, email=email, name=name, role=role,
                                               password=DEMO_PASSWORD)
        else:
            token = await issue_token(rt, agent_id=existing.id or 0, name="demo")
        tokens[email] = token
    for inbound in _messages():
        await pipeline.ingest(rt, inbound)
    for path in EXTRA_SEEDERS:
        module_name, _, attr = path.partition(":")
        try:
            module: Any = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        await getattr(module, attr)(rt)
    return [
        "Demo data is ready. Log in at http://127.0.0.1:8000 with:",
        *(f"  {role:<10} {email} / {DEMO_PASSWORD}" for email, _n, role in AGENTS),
        f"API token (admin): {tokens['admin@demo.shop']}",
    ]
