"""Demo orders for the demo customers of `inbox.demo` (safe to run twice: upsert by id)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from inbox.orders import parse_order, upsert_order
from inbox.runtime import Runtime
from inbox.types import utcnow


def _orders() -> list[dict[str, Any]]:
    now = utcnow()

    def day(n: int) -> str:
        return (now - timedelta(days=n)).isoformat()
    return [
        {"external_id": "demo-1001", "number": "#1001", "placed_at": day(4), "status": "open",
         "financial_status": "paid", "fulfillment_status": "shipped", "currency": "USD",
         "total": "64.80", "customer_name": "Maria Lopez", "customer_phone": "+1 555 010 2030",
         "tracking_number": "1Z999AA10123456784",
         "tracking_url": "https://tracking.example/1Z999AA10123456784",
         "items": [{"name": "Ceramic mug, blue", "quantity": 2, "price": "14.90"},
                   {"name": "Coffee beans 500 g", "quantity": 1, "price": "35.00"}]},
        {"external_id": "demo-0991", "number": "#991", "placed_at": day(40), "status": "closed",
         "financial_status": "paid", "fulfillment_status": "delivered", "currency": "USD",
         "total": "19.00", "customer_phone": "+15550102030",
         "items": [{"name": "Gift card", "quantity": 1, "price": "19.00"}]},
        {"external_id": "demo-1002", "number": "#1002", "placed_at": day(6), "status": "open",
         "financial_status": "paid", "fulfillment_status": "delivered", "currency": "EUR",
         "total": "129.00", "customer_name": "Jonas Becker",
         "customer_email": "Jonas.Becker@mail.example",
         "tracking_number": "00340434161234567890",
         "tracking_url": "https://tracking.example/00340434161234567890",
         "items": [{"name": "Rain jacket, size M", "quantity": 1, "price": "129.00"}]},
        {"external_id": "demo-1003", "number": "#1003", "placed_at": day(1), "status": "open",
         "financial_status": "paid", "fulfillment_status": None, "currency": "KRW",
         "total": "45000", "customer_name": "김민지", "customer_phone": "+82 10-1234-5678",
         "items": [{"name": "Linen tote bag", "quantity": 1, "price": "45000"}]},
    ]


async def seed(rt: Runtime) -> int:
    """Upsert the demo orders; returns how many."""
    for data in _orders():
        fields = parse_order(data, default_region=rt.settings.default_region)
        fields["source"] = "demo"
        await upsert_order(rt, fields)
    return len(_orders())
