"""Orders: the upsert API, contact matching by phone/email both ways, the import CLI, and\nShopify (signed webhooks, Admin API backfill against a local fake shop)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inbox import pipeline
from inbox.errors import BadInput
from inbox.orders import Order, parse_order
from inbox.types import Inbound, ThreadHints
from tests.conftest import make_settings
from tests.support.server import LiveServer, live_server
from web.app import build_runtime

ROOT = Path(__file__).resolve().parents[2]


def sms(sender: str, pid: str) -> Inbound:
    return Inbound(channel="sms", provider="twilio", provider_message_id=pid, sender=sender,
                   sender_kind="phone", recipient="+15550009999", text="Where is my order?")


def mail(sender: str, pid: str) -> Inbound:
    return Inbound(channel="email", provider="email", provider_message_id=pid, sender=sender,
                   sender_kind="email", recipient="support@shop.example", text="Hello",
                   thread=ThreadHints(message_id=pid, subject="Order question"))


ORDER = {
    "number": "#1001", "placed_at": "2026-11-19T10:00:00Z", "status": "open",
    "financial_status": "paid", "fulfillment_status": "shipped", "currency": "usd",
    "total": "64.8", "customer_phone": "(555) 010-2030",
    "tracking_number": "1Z999", "tracking_url": "https://tracking.example/1Z999",
    "items": [{"name": "Ceramic mug", "quantity": 2, "price": 14.9}],
}


# ------------------------------------------------------------------------------ pure parsing


def test_parse_order_canonicalises_contact_fields_and_money() -> None:
    fields = parse_order({**ORDER, "customer_email": " Maria@Mail.EXAMPLE "}, external_id="o1")
    assert fields["customer_phone"] == "+15550102030"
    assert fields["customer_email"] == "maria@mail.example"
    assert fields["currency"] == "USD"
    assert fields["total"] == "64.80"
    assert fields["items"] == [{"name": "Ceramic mug", "quantity": 2, "sku": None, "price": "14.90"}]


@pytest.mark.parametrize(("change", "message"), [
    ({"tracking_url": "javascript:alert(1)"}, "http(s) URL"),
    ({"total": "lots"}, '"total" must be a number'),
    ({"placed_at": "2026-11-19 10:00"}, "needs a time zone"),
    ({"items": [{"name": "Mug", "quantity": 0}]}, "quantity"),
    ({"customer_email": "not-an-address"}, "not an email address"),
    ({"currency": "EURO"}, "3-letter code"),
])
def test_parse_order_says_which_field_is_wrong(change: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_order({**ORDER, **change}, external_id="o1")
    assert message in info.value.detail


def test_parse_order_needs_an_external_id() -> None:
    with pytest.raises(BadInput, match="external_id"):
        parse_order({"number": "1"})


# ------------------------------------------------------------------------------ API


async def test_put_order_creates_then_updates_by_external_id(
    server: LiveServer, admin_token: str
) -> None:
    first = await server.client.put("/api/v1/orders/shop-1001", json=ORDER,
                                    headers=server.auth(admin_token))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["external_id"] == "shop-1001" and body["total"] == "64.80"
    again = await server.client.put("/api/v1/orders/shop-1001",
                                    json={**ORDER, "fulfillment_status": "delivered"},
                                    headers=server.auth(admin_token))
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    got = await server.client.get("/api/v1/orders/shop-1001", headers=server.auth(admin_token))
    assert got.json()["fulfillment_status"] == "delivered"


async def test_order_arriving_before_the_customer_is_found_by_phone(
    server: LiveServer, admin_token: str
) -> None:
    await server.client.put("/api/v1/orders/shop-1001", json=ORDER, headers=server.auth(admin_token))
    result = await pipeline.ingest(server.rt, sms("+1 555 010 2030", "SMorders1"))
    resp = await server.client.get(f"/api/v1/contacts/{result.contact_id}/orders",
                                   headers=server.auth(admin_token))
    assert resp.status_code == 200
    (order,) = resp.json()["items"]
    assert order["number"] == "#1001" and order["matched_by"] == "phone"
    assert order["contact_id"] is None  # linked at read time, not by rewriting the order


async def test_order_for_a_known_customer_links_by_email_and_others_do_not_leak(
    server: LiveServer, admin_token: str
) -> None:
    jonas = await pipeline.ingest(server.rt, mail("jonas.becker@mail.example", "<o1@mail.example>"))
    other = await pipeline.ingest(server.rt, sms("+15550107777", "SMorders2"))
    resp = await server.client.put("/api/v1/orders/shop-1002", headers=server.auth(admin_token),
                                   json={"number": "#1002", "customer_email": "Jonas.Becker@MAIL.example",
                                         "total": "129", "currency": "EUR"})
    assert resp.status_code == 201
    assert resp.json()["contact_id"] == jonas.contact_id
    mine = await server.client.get(f"/api/v1/contacts/{jonas.contact_id}/orders",
                                   headers=server.auth(admin_token))
    assert [o["number"] for o in mine.json()["items"]] == ["#1002"]
    theirs = await server.client.get(f"/api/v1/contacts/{other.contact_id}/orders",
                                     headers=server.auth(admin_token))
    assert theirs.json()["items"] == []


async def test_orders_api_refuses_bad_input_wrong_roles_and_unknown_contacts(
    server: LiveServer, admin_token: str, agent_token: str
) -> None:
    bad = await server.client.put("/api/v1/orders/x", json={"tracking_url": "javascript:alert(1)"},
                                  headers=server.auth(admin_token))
    assert bad.status_code == 400 and bad.json()["error"] == "bad_input"
    assert "tracking_url" in bad.json()["detail"]
    forbidden = await server.client.put("/api/v1/orders/x", json=ORDER, headers=server.auth(agent_token))
    assert forbidden.status_code == 403
    anonymous = await server.client.get("/api/v1/contacts/1/orders")
    assert anonymous.status_code == 401
    missing = await server.client.get("/api/v1/contacts/999/orders", headers=server.auth(agent_token))
    assert missing.status_code == 404


# ------------------------------------------------------------------------------ import CLI


async def _run_import(database_url: str, path: Path) -> tuple[int, str, str]:
    env = {**os.environ, "INBOX_DATABASE_URL": database_url,
           "INBOX_SECRET_KEY": "test-secret-key-0123456789"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inbox.cli", "orders", "import", str(path), cwd=str(ROOT), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def _numbers(database_url: str) -> list[str]:
    rt = await build_runtime(make_settings(database_url), migrate_db=False, responders=lambda s: [])
    try:
        async with rt.sessions() as session:
            result = await session.exec(select(Order.number).order_by(col(Order.number)))
            return list(result.all())
    finally:
        await rt.close()


async def test_import_csv_reports_bad_lines_by_number_and_imports_the_rest(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "external_id,number,placed_at,total,currency,items,customer_email,customer_phone,tracking_url\n"
        "a1,#1,2026-11-01T10:00:00Z,10.00,USD,2x Mug @ 5.00,a@mail.example,,\n"
        "a2,#2,yesterday,10.00,USD,,b@mail.example,,\n"
        '"a3","#3",2026-11-02T10:00:00Z,12.5,EUR,"[{""name"": ""Bag"", ""quantity"": 1}]",,+15550102030,\n'
        "a4,#4,,1,USD,,,,javascript:alert(1)\n", encoding="utf-8")
    code, out, err = await _run_import(sqlite_url, path)
    assert code == 1
    assert f"{path}:3:" in err and "placed_at" in err
    assert f"{path}:5:" in err and "tracking_url" in err
    assert ":2:" not in err and ":4:" not in err
    assert "imported 2 orders; 2 bad records skipped" in out
    assert await _numbers(sqlite_url) == ["#1", "#3"]


async def test_import_json_reports_the_line_each_bad_order_starts_on(
    sqlite_url: str, tmp_path: Path
) -> None:
    orders = [{"external_id": "j1", "number": "#11"},
              {"external_id": "j2", "number": "#12", "total": "NaN-ish"},
              {"external_id": "j3", "number": "#13", "customer_phone": "+82 10-1234-5678"}]
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(orders, indent=2), encoding="utf-8")
    code, out, err = await _run_import(sqlite_url, path)
    assert code == 1
    second_starts = json.dumps(orders, indent=2).splitlines().index("  {", 2) + 1
    assert f"{path}:{second_starts}:" in err and '"total"' in err
    assert await _numbers(sqlite_url) == ["#11", "#13"]

    good = tmp_path / "good.json"
    good.write_text(json.dumps(orders[:1]), encoding="utf-8")
    code, out, err = await _run_import(sqlite_url, good)
    assert (code, err) == (0, "") and "imported 1 order" in out


# ------------------------------------------------------------------------------ Shopify

SHOPIFY_SECRET = "shpss_test_secret"


def shopify_order(order_id: int, *, email: str | None = None, phone: str | None = None,
                  **extra: object) -> dict[str, object]:
    return {
        "id": order_id, "name": f"#{order_id}", "created_at": "2026-11-19T10:00:00-05:00",
        "financial_status": "paid", "fulfillment_status": None, "currency": "USD",
        "total_price": "64.80", "email": email, "phone": phone, "cancelled_at": None,
        "customer": {"first_name": "Maria", "last_name": "Lopez", "phone": None},
        "line_items": [{"title": "Ceramic mug", "name": "Ceramic mug - Blue", "quantity": 2,
                        "price": "14.90", "sku": "MUG-B"}],
        "fulfillments": [], **extra,
    }


def signed(body: bytes, secret: str = SHOPIFY_SECRET) -> str:
    import base64
    import hashlib
    import hmac

    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
async def shop_server(sqlite_url: str) -> AsyncIterator[LiveServer]:
    settings = make_settings(sqlite_url, extra={"SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET})
    async with live_server(settings) as srv:
        yield srv


async def test_shopify_webhook_with_a_valid_signature_upserts_the_order(
    shop_server: LiveServer, admin_token_for: Any
) -> None:
    token = await admin_token_for(shop_server)
    contact = await pipeline.ingest(shop_server.rt, mail("maria@mail.example", "<s1@mail.example>"))
    body = json.dumps(shopify_order(820982911946154508, email="Maria@Mail.example")).encode()
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": signed(body),
               "Content-Type": "application/json"}
    resp = await shop_server.client.post("/webhooks/shopify", content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"ok": True, "order": "shopify:820982911946154508", "created": True}

    fulfilled = shopify_order(820982911946154508, email="maria@mail.example", fulfillments=[
        {"tracking_number": "1Z999", "tracking_url": "https://ups.example/1Z999",
         "shipment_status": "in_transit"}])
    body = json.dumps(fulfilled).encode()
    headers.update({"X-Shopify-Topic": "orders/updated", "X-Shopify-Hmac-Sha256": signed(body)})
    assert (await shop_server.client.post("/webhooks/shopify", content=body, headers=headers)).json()["created"] is False

    orders = (await shop_server.client.get(f"/api/v1/contacts/{contact.contact_id}/orders",
                                           headers=shop_server.auth(token))).json()["items"]
    (order,) = orders
    assert order["number"] == "#820982911946154508" and order["source"] == "shopify"
    assert order["fulfillment_status"] == "in_transit" and order["tracking_number"] == "1Z999"
    assert order["items"][0] == {"name": "Ceramic mug - Blue", "quantity": 2, "sku": "MUG-B", "price": "14.90"}
    assert order["placed_at"] == "2026-11-19T15:00:00+00:00"


async def test_shopify_webhook_refuses_a_bad_signature_and_ignores_other_topics(
    shop_server: LiveServer
) -> None:
    body = json.dumps(shopify_order(1)).encode()
    forged = await shop_server.client.post("/webhooks/shopify", content=body, headers={
        "X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": signed(body, "wrong")})
    assert forged.status_code == 403 and forged.json()["error"] == "signature_invalid"
    unsigned = await shop_server.client.post("/webhooks/shopify", content=body,
                                             headers={"X-Shopify-Topic": "orders/create"})
    assert unsigned.status_code == 403
    other = await shop_server.client.post("/webhooks/shopify", content=b"{}", headers={
        "X-Shopify-Topic": "products/update", "X-Shopify-Hmac-Sha256": signed(b"{}")})
    assert other.json() == {"ok": True, "ignored": "products/update"}


@pytest.fixture
def admin_token_for() -> Any:
    async def make(srv: LiveServer) -> str:
        from inbox.agents import create_agent

        _agent, token = await create_agent(srv.rt, email="admin@test.example", name="Admin",
                                           role="admin")
        return token
    return make


def fake_shop(pages: list[list[dict[str, object]]], seen: list[dict[str, str]]) -> Starlette:
    """A local stand-in for the Admin API: cursor pages linked by `Link: rel="next"`."""

    async def orders(request: Request) -> Response:
        seen.append({"token": request.headers.get("x-shopify-access-token", ""),
                     **dict(request.query_params)})
        index = int(request.query_params.get("page_info", "0"))
        headers = {}
        if index + 1 < len(pages):
            nxt = f"{request.base_url}admin/api/2024-10/orders.json?limit=250&page_info={index + 1}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return JSONResponse({"orders": pages[index]}, headers=headers)

    return Starlette(routes=[Route("/admin/api/2024-10/orders.json", orders)])


async def test_shopify_backfill_pages_through_the_admin_api(sqlite_url: str, admin_token_for: Any) -> None:
    import uvicorn

    from tests.support.server import free_port

    seen: list[dict[str, str]] = []
    pages = [[shopify_order(1, phone="+1 555 010 2030"), shopify_order(2, email="not an email")],
             [shopify_order(3, cancelled_at="2026-11-20T10:00:00Z")]]
    port = free_port()
    shop = uvicorn.Server(uvicorn.Config(fake_shop(pages, seen), host="127.0.0.1", port=port,
                                         log_level="warning"))
    task = asyncio.create_task(shop.serve())
    while not shop.started:
        await asyncio.sleep(0.01)
    try:
        settings = make_settings(sqlite_url, extra={"SHOPIFY_SHOP_URL": f"http://127.0.0.1:{port}",
                                                    "SHOPIFY_ACCESS_TOKEN": "shpat_test"})
        async with live_server(settings) as srv:
            token = await admin_token_for(srv)
            resp = await srv.client.post("/api/v1/orders/sync/shopify", headers=srv.auth(token))
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"imported": 3, "skipped": 0}
            third = (await srv.client.get("/api/v1/orders/shopify:3", headers=srv.auth(token))).json()
            assert third["status"] == "cancelled"
            second = (await srv.client.get("/api/v1/orders/shopify:2", headers=srv.auth(token))).json()
            assert second["customer_email"] is None  # a bad address is dropped, the order kept
            contact = await pipeline.ingest(srv.rt, sms("+15550102030", "SMshopify1"))
            mine = (await srv.client.get(f"/api/v1/contacts/{contact.contact_id}/orders",
                                         headers=srv.auth(token))).json()["items"]
            assert [o["external_id"] for o in mine] == ["shopify:1"]
    finally:
        shop.should_exit = True
        await task
    assert [s["token"] for s in seen] == ["shpat_test", "shpat_test"]
    assert seen[0]["status"] == "any" and seen[1]["page_info"] == "1"


async def test_stored_orders_answer_the_order_source_port_newest_first(
    server: LiveServer, admin_token: str
) -> None:
    from inbox.orders import StoredOrders

    for ext, placed, extra in (("s1", "2026-11-01T10:00:00Z", {"customer_phone": "+15550102030"}),
                               ("s2", "2026-11-05T10:00:00Z", {"customer_email": "m@mail.example"}),
                               ("s3", "2026-11-03T10:00:00Z", {"customer_phone": "+15550109999"})):
        resp = await server.client.put(f"/api/v1/orders/{ext}", headers=server.auth(admin_token),
                                       json={"number": ext, "placed_at": placed, **extra})
        assert resp.status_code == 201
    source = next(s for s in server.rt.order_sources if isinstance(s, StoredOrders))
    found = await source.orders_for(emails=["m@mail.example"], phones=["+15550102030"])
    assert [o["number"] for o in found] == ["s2", "s1"]
    assert await source.orders_for(emails=[], phones=[]) == []
