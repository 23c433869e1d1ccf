"""Shop orders, so agents see what a customer bought without leaving the inbox.

An order carries the customer's email and phone in canonical form (the same forms
identities use). Orders link to contacts both ways without touching the pipeline:
an arriving order records the contact that owns its email/phone identity, if any, and
reads match `contact_id` *or* any canonical email/phone among the contact's identities,
so a contact created after the order still finds it.

    parse_order(data)          pure: validate and normalise one order (BadInput otherwise)
    upsert_order(rt, fields)   one transaction: insert or update by external_id
    orders_of_contact(...)     newest first, with how each order matched
    StoredOrders               the table as an `OrderSource` (FAQ answers read it)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Column, Index, desc, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import store
from inbox.db import JSONType, UTCDateTime
from inbox.errors import BadInput
from inbox.events import EventOut
from inbox.identity import canonical_email, canonical_phone
from inbox.runtime import Runtime
from inbox.types import utcnow

MAX_ITEMS = 200
_TEXT_FIELDS = {  # field -> max length
    "number": 100, "status": 40, "financial_status": 40, "fulfillment_status": 40,
    "tracking_number": 200, "customer_name": 200, "source": 20,
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class Order(SQLModel, table=True):
    """One shop order. `total` and item prices are decimal strings (exact money)."""

    __tablename__ = "shop_order"  # "order" is an SQL keyword
    __table_args__ = (Index("ix_shop_order_placed", "placed_at", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=200, unique=True)
    number: str = Field(max_length=100)
    source: str = Field(default="api", max_length=20)  # api | import | shopify | demo
    placed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default="open", max_length=40)
    financial_status: str | None = Field(default=None, max_length=40)
    fulfillment_status: str | None = Field(default=None, max_length=40)
    currency: str | None = Field(default=None, max_length=3)
    total: str | None = Field(default=None, max_length=32)
    items: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    tracking_number: str | None = Field(default=None, max_length=200)
    tracking_url: str | None = Field(default=None, max_length=1000)
    customer_name: str | None = Field(default=None, max_length=200)
    customer_email: str | None = Field(default=None, max_length=320, index=True)
    customer_phone: str | None = Field(default=None, max_length=32, index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# ---------------------------------------------------------------------------- parsing


def _text(data: dict[str, Any], key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise BadInput(f'"{key}" must be text, got {type(value).__name__}')
    value = " ".join(value.replace("\x00", "").split())
    if len(value) > limit:
        raise BadInput(f'"{key}" is at most {limit} characters, got {len(value)}')
    return value or None


def _money(value: Any, key: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadInput(f'"{key}" must be a number, got {value!r}')
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadInput(f'"{key}" must be a number like 19.90, got {value!r}') from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e12"):
        raise BadInput(f'"{key}" is out of range: {value!r}')
    return str(amount.quantize(Decimal("0.01")))


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadInput(f'"placed_at" must be an ISO 8601 time, got {value!r}')
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f'"placed_at" must be an ISO 8601 time, got {value!r}') from None
    if moment.tzinfo is None:
        raise BadInput(f'"placed_at" needs a time zone (e.g. 2026-11-20T10:00:00Z), got {value!r}')
    return moment


def _url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 1000:
        raise BadInput('"tracking_url" must be a URL of at most 1000 characters')
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f'"tracking_url" must be an http(s) URL, got {value!r}')
    return value.strip()


def _items(value: Any) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        raise BadInput('"items" must be a list of {"name", "quantity", "price"}')
    if len(value) > MAX_ITEMS:
        raise BadInput(f'"items" has at most {MAX_ITEMS} entries, got {len(value)}')
    items = []
    for i, raw in enumerate(value, 1):
        if not isinstance(raw, dict):
            raise BadInput(f"item {i} must be an object")
        name = _text(raw, "name", 500) or _text(raw, "title", 500) or _text(raw, "sku", 200)
        if not name:
            raise BadInput(f'item {i} needs a "name"')
        quantity = raw.get("quantity", 1)
        if isinstance(quantity, str) and quantity.strip().isdigit():
            quantity = int(quantity)
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 < quantity < 100_000:
            raise BadInput(f'item {i}: "quantity" must be a whole number from 1, got {quantity!r}')
        items.append({"name": name, "quantity": quantity, "sku": _text(raw, "sku", 200),
                      "price": _money(raw.get("price"), f"item {i} price")})
    return items


def parse_order(data: dict[str, Any], *, external_id: str | None = None,
                default_region: str = "US") -> dict[str, Any]:
    """The clean column values of one order, or `BadInput` saying which field is wrong.

    `external_id` (the shop's id) is required, from the argument or the data; `number`
    defaults to it. Email and phone are canonicalised like identities.
    """
    if not isinstance(data, dict):
        raise BadInput("an order is a JSON object")
    ext = external_id if external_id is not None else data.get("external_id", data.get("id"))
    if isinstance(ext, int) and not isinstance(ext, bool):
        ext = str(ext)
    if not isinstance(ext, str) or not ext.strip() or len(ext) > 200:
        raise BadInput('"external_id" is required (text, at most 200 characters)')
    fields: dict[str, Any] = {"external_id": ext.strip()}
    for key, limit in _TEXT_FIELDS.items():
        fields[key] = _text(data, key, limit)
    fields["number"] = fields["number"] or fields["external_id"][:100]
    fields["status"] = fields["status"] or "open"
    fields["source"] = fields["source"] or "api"
    currency = _text(data, "currency", 10)
    if currency is not None and not _CURRENCY.match(currency.upper()):
        raise BadInput(f'"currency" must be a 3-letter code like EUR, got {currency!r}')
    fields["currency"] = currency.upper() if currency else None
    fields["total"] = _money(data.get("total"), "total")
    fields["placed_at"] = _time(data.get("placed_at"))
    fields["tracking_url"] = _url(data.get("tracking_url"))
    fields["items"] = _items(data.get("items"))
    email = _text(data, "customer_email", 320)
    phone = _text(data, "customer_phone", 64)
    try:
        fields["customer_email"] = canonical_email(email) if email else None
    except BadInput as exc:
        raise BadInput(f'"customer_email": {exc.detail}') from None
    fields["customer_phone"] = canonical_phone(phone, default_region=default_region) if phone else None
    return fields


# ---------------------------------------------------------------------------- storage


async def _owner(session: AsyncSession, fields: dict[str, Any]) -> int | None:
    for kind, key in (("email", "customer_email"), ("phone", "customer_phone")):
        if fields.get(key):
            identity = await store.find_identity(session, kind=kind, value=fields[key])
            if identity is not None:
                return identity.contact_id
    return None


async def upsert_order(rt: Runtime, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Insert or update the order with `fields["external_id"]` (from `parse_order`).

    Links it to the contact owning its email or phone identity. After commit, tells
    open inboxes with a seq-less `order.updated` event (a panel refresh hint, not state
    to replay). Returns the public order and whether it was new.
    """
    order, created = await _upsert(rt, fields)
    rt.bus.publish(EventOut(seq=None, type="order.updated", conversation_id=None,
                            payload={"order": order}))
    return order, created


async def _upsert(rt: Runtime, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    for attempt in range(2):
        try:
            async with rt.sessions() as session, session.begin():
                result = await session.exec(  # type: ignore[call-overload]
                    select(Order).where(col(Order.external_id) == fields["external_id"]))
                order = result.scalars().first()
                created = order is None
                if order is None:
                    order = Order(**fields)
                    session.add(order)
                else:
                    for key, value in fields.items():
                        setattr(order, key, value)
                    order.updated_at = utcnow()
                order.contact_id = await _owner(session, fields) or (None if created else order.contact_id)
                await session.flush()
                return order_out(order), created
        except IntegrityError:
            if attempt:  # a concurrent insert of the same order won; update it now
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def orders_of_contact(session: AsyncSession, *, contact_id: int,
                            limit: int = 20) -> list[dict[str, Any]]:
    """A contact's orders, newest first: linked to it, or sharing an email or phone."""
    identities = await store.identities_of(session, contact_id=contact_id)
    emails = [i.value for i in identities if i.kind == "email"]
    phones = [i.value for i in identities if i.kind == "phone"]
    conditions = [col(Order.contact_id) == contact_id]
    if emails:
        conditions.append(col(Order.customer_email).in_(emails))
    if phones:
        conditions.append(col(Order.customer_phone).in_(phones))
    result = await session.exec(  # type: ignore[call-overload]
        select(Order).where(or_(*conditions))
        .order_by(desc(col(Order.placed_at)).nulls_last(), desc(col(Order.id))).limit(limit))
    out = []
    for order in result.scalars().all():
        data = order_out(order)
        data["matched_by"] = ("email" if order.customer_email in emails else
                              "phone" if order.customer_phone in phones else "contact")
        out.append(data)
    return out


class StoredOrders:
    """Our own order table as an `OrderSource` (the FAQ answers "where is my order?" from it)."""

    name = "stored"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, limit: int = 20) -> None:
        self._sessions = sessions
        self._limit = limit

    async def orders_for(self, *, emails: Sequence[str], phones: Sequence[str]) -> list[dict[str, Any]]:
        """Orders placed with any of these canonical emails or phones, newest first."""
        conditions = []
        if emails:
            conditions.append(col(Order.customer_email).in_(list(emails)))
        if phones:
            conditions.append(col(Order.customer_phone).in_(list(phones)))
        if not conditions:
            return []
        async with self._sessions() as session:
            result = await session.exec(  # type: ignore[call-overload]
                select(Order).where(or_(*conditions))
                .order_by(desc(col(Order.placed_at)).nulls_last(), desc(col(Order.id)))
                .limit(self._limit))
            return [order_out(o) for o in result.scalars().all()]


async def order_by_external_id(session: AsyncSession, *, external_id: str) -> Order | None:
    """The order with this shop id, if any."""
    result = await session.exec(  # type: ignore[call-overload]
        select(Order).where(col(Order.external_id) == external_id))
    order: Order | None = result.scalars().first()
    return order


def order_out(order: Order) -> dict[str, Any]:
    """The public, JSON-safe shape of an order."""
    return {
        "id": order.id, "external_id": order.external_id, "number": order.number,
        "source": order.source,
        "placed_at": order.placed_at.isoformat() if order.placed_at else None,
        "status": order.status, "financial_status": order.financial_status,
        "fulfillment_status": order.fulfillment_status, "currency": order.currency,
        "total": order.total, "items": list(order.items),
        "tracking_number": order.tracking_number, "tracking_url": order.tracking_url,
        "customer_name": order.customer_name, "customer_email": order.customer_email,
        "customer_phone": order.customer_phone, "contact_id": order.contact_id,
        "updated_at": order.updated_at.isoformat(),
    }
