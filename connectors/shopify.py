"""Shopify orders: signed `orders/*` webhooks and an Admin API backfill.

Shopify signs each webhook with `X-Shopify-Hmac-Sha256`: the base64 HMAC-SHA256 of the
raw body under the app's webhook secret
(https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook).
The backfill pages through `GET /admin/api/{version}/orders.json?status=any` following
the `Link: <...>; rel="next"` header (cursor pagination,
https://shopify.dev/docs/api/admin-rest/usage/pagination). The base URL is a setting, so
tests point it at a local fake shop.

Settings (environment, or `Settings.extra` in tests): `SHOPIFY_WEBHOOK_SECRET`,
`SHOPIFY_SHOP_URL` (https://your-shop.myshopify.com), `SHOPIFY_ACCESS_TOKEN`,
`SHOPIFY_API_VERSION` (default 2024-10).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from inbox.errors import BadInput, InboxError, SignatureInvalid, UnsupportedPayload
from inbox.orders import parse_order, upsert_order
from inbox.runtime import Runtime
from inbox.settings import Settings

DEFAULT_API_VERSION = "2024-10"
PAGE_SIZE = 250  # the Admin REST API's maximum page size
MAX_PAGES = 400  # 100,000 orders: a backfill that goes further is a loop, not a shop
# Topics whose payload is a whole order; orders/delete carries only an id.
ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/paid", "orders/fulfilled",
                          "orders/partially_fulfilled", "orders/cancelled", "orders/edited"})


@dataclass(frozen=True, slots=True)
class ShopifyConfig:
    """What the Shopify integration needs; any part may be missing (that part is off)."""

    webhook_secret: str | None
    shop_url: str | None
    access_token: str | None
    api_version: str = DEFAULT_API_VERSION


def config(settings: Settings, env: Mapping[str, str] | None = None) -> ShopifyConfig:
    """The Shopify settings, from `settings.extra` first, then the environment."""
    source = os.environ if env is None else env

    def get(name: str) -> str | None:
        return settings.extra.get(name) or source.get(name) or None

    return ShopifyConfig(
        webhook_secret=get("SHOPIFY_WEBHOOK_SECRET"),
        shop_url=(get("SHOPIFY_SHOP_URL") or "").rstrip("/") or None,
        access_token=get("SHOPIFY_ACCESS_TOKEN"),
        api_version=get("SHOPIFY_API_VERSION") or DEFAULT_API_VERSION,
    )


def verify_webhook(body: bytes, signature: str | None, secret: str | None) -> None:
    """Raise `SignatureInvalid` unless `signature` is Shopify's HMAC of `body` under `secret`."""
    if not secret:
        raise SignatureInvalid("Shopify webhooks are off: SHOPIFY_WEBHOOK_SECRET is not set")
    if not signature:
        raise SignatureInvalid("missing X-Shopify-Hmac-Sha256 header")
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, signature.strip()):
        raise SignatureInvalid("X-Shopify-Hmac-Sha256 does not match the body")


def _first(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "")), None)


def order_from_shopify(payload: Any) -> dict[str, Any]:
    """Our order fields (input to `parse_order`) from a Shopify order object."""
    if not isinstance(payload, dict) or payload.get("id") in (None, ""):
        raise UnsupportedPayload('a Shopify order is a JSON object with an "id"')
    customer = payload.get("customer") or {}
    shipping = payload.get("shipping_address") or {}
    billing = payload.get("billing_address") or {}
    fulfillments = [f for f in payload.get("fulfillments") or [] if isinstance(f, dict)]
    latest = fulfillments[-1] if fulfillments else {}
    status = ("cancelled" if payload.get("cancelled_at") else
              "closed" if payload.get("closed_at") else "open")
    name = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p)
    items = [{"name": _first(li.get("name"), li.get("title"), li.get("sku"), "item"),
              "quantity": li.get("quantity") or 1, "price": li.get("price"), "sku": li.get("sku")}
             for li in payload.get("line_items") or [] if isinstance(li, dict)]
    return {
        "external_id": f"shopify:{payload['id']}",
        "number": _first(payload.get("name"), payload.get("order_number"), payload["id"]),
        "source": "shopify",
        "placed_at": payload.get("created_at"),
        "status": status,
        "financial_status": payload.get("financial_status"),
        "fulfillment_status": _first(latest.get("shipment_status"), payload.get("fulfillment_status"),
                                     "unfulfilled"),
        "currency": payload.get("currency"),
        "total": payload.get("total_price"),
        "items": items,
        "tracking_number": _first(latest.get("tracking_number"), *(latest.get("tracking_numbers") or [])),
        "tracking_url": _first(latest.get("tracking_url"), *(latest.get("tracking_urls") or [])),
        "customer_name": name or _first(shipping.get("name"), billing.get("name")),
        "customer_email": _first(payload.get("email"), payload.get("contact_email"), customer.get("email")),
        "customer_phone": _first(payload.get("phone"), customer.get("phone"), shipping.get("phone"),
                                 billing.get("phone")),
    }


def parse_shopify_order(payload: Any, *, default_region: str = "US") -> dict[str, Any]:
    """Validated order fields; a malformed email, phone or tracking URL is dropped, not fatal.

    Shopify accepts free-text phone fields and odd tracking links; losing one of those
    is better than losing the order.
    """
    data = order_from_shopify(payload)
    for optional in (None, "tracking_url", "customer_phone", "customer_email"):
        if optional:
            data[optional] = None
        try:
            fields = parse_order(data, default_region=default_region)
        except BadInput:
            continue
        fields["source"] = "shopify"
        return fields
    return parse_order(order_from_shopify(payload), default_region=default_region)  # the real reason


async def handle_webhook(rt: Runtime, *, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Verify and apply one webhook; returns what happened (always 2xx-worthy once verified)."""
    cfg = config(rt.settings)
    verify_webhook(body, headers.get("x-shopify-hmac-sha256"), cfg.webhook_secret)
    topic = headers.get("x-shopify-topic", "")
    if topic not in ORDER_TOPICS:
        return {"ok": True, "ignored": topic or "no topic"}
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnsupportedPayload(f"the webhook body is not JSON: {exc}") from None
    fields = parse_shopify_order(payload, default_region=rt.settings.default_region)
    order, created = await upsert_order(rt, fields)
    return {"ok": True, "order": order["external_id"], "created": created}


class ShopifyClient:
    """The few Admin REST calls we make; `transport` is the seam for tests."""

    def __init__(self, cfg: ShopifyConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 30.0) -> None:
        if not cfg.shop_url or not cfg.access_token:
            raise BadInput("Shopify backfill needs SHOPIFY_SHOP_URL and SHOPIFY_ACCESS_TOKEN")
        self.cfg = cfg
        self._http = httpx.AsyncClient(
            base_url=cfg.shop_url, transport=transport, timeout=timeout,
            headers={"X-Shopify-Access-Token": cfg.access_token, "Accept": "application/json"})

    async def __aenter__(self) -> ShopifyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()

    async def orders(self) -> AsyncIterator[dict[str, Any]]:
        """Every order of the shop (any status), page by page."""
        url: str | None = f"/admin/api/{self.cfg.api_version}/orders.json"
        params: dict[str, Any] | None = {"status": "any", "limit": PAGE_SIZE}
        for _page in range(MAX_PAGES):
            if url is None:
                return
            try:
                resp = await self._http.get(url, params=params)
            except httpx.HTTPError as exc:
                raise InboxError(f"Shopify is unreachable: {exc}") from None
            if resp.status_code != 200:
                raise InboxError(f"Shopify answered {resp.status_code} to {resp.request.url}: "
                                 f"{resp.text[:200]}")
            body = resp.json()
            for order in body.get("orders") or []:
                yield order
            url = resp.links.get("next", {}).get("url")
            params = None  # the next link carries its own page_info and limit
        raise InboxError(f"Shopify backfill stopped after {MAX_PAGES} pages")


async def backfill(rt: Runtime, client: ShopifyClient) -> dict[str, int]:
    """Upsert every order the shop has; orders that cannot be read are counted, not fatal."""
    imported = skipped = 0
    async for payload in client.orders():
        try:
            fields = parse_shopify_order(payload, default_region=rt.settings.default_region)
        except (BadInput, UnsupportedPayload):
            skipped += 1
            continue
        await upsert_order(rt, fields)
        imported += 1
    return {"imported": imported, "skipped": skipped}
