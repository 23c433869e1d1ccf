"""Orders over HTTP: the shop pushes them (`PUT /api/v1/orders/{external_id}`, Shopify
webhooks), an admin can backfill from Shopify, agents read them per contact."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors import shopify
from inbox.errors import NotFound
from inbox.models import Contact
from inbox.orders import order_by_external_id, order_out, orders_of_contact, parse_order, upsert_order
from web.auth import CONVERSATION_ROLES, require
from web.http import json_object, optional_int, read_body, runtime

MAX_ORDERS = 50


async def put_order(request: Request) -> Response:
    """Create or replace one order by the shop's id: 201 when new, 200 when updated."""
    await require(request, "admin")
    rt = runtime(request)
    data = await json_object(request)
    fields = parse_order(data, external_id=request.path_params["external_id"],
                         default_region=rt.settings.default_region)
    order, created = await upsert_order(rt, fields)
    return JSONResponse(order, status_code=201 if created else 200)


async def get_order(request: Request) -> Response:
    await require(request, *CONVERSATION_ROLES)
    external_id = request.path_params["external_id"]
    async with runtime(request).sessions() as session:
        order = await order_by_external_id(session, external_id=external_id)
    if order is None:
        raise NotFound(f"order {external_id} does not exist")
    return JSONResponse(order_out(order))


async def contact_orders(request: Request) -> Response:
    """A contact's recent orders, matched by link, email or phone; newest first."""
    await require(request, *CONVERSATION_ROLES)
    contact_id = optional_int(request.path_params.get("id"), "id") or 0
    limit = optional_int(request.query_params.get("limit"), "limit") or 10
    async with runtime(request).sessions() as session:
        if await session.get(Contact, contact_id) is None:
            raise NotFound(f"contact {contact_id} does not exist")
        items = await orders_of_contact(session, contact_id=contact_id,
                                        limit=max(1, min(limit, MAX_ORDERS)))
    return JSONResponse({"items": items})


async def shopify_webhook(request: Request) -> Response:
    """`POST /webhooks/shopify`: an `orders/*` webhook, signed with X-Shopify-Hmac-Sha256."""
    rt = runtime(request)
    body = await read_body(request, limit=rt.settings.max_body_bytes)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return JSONResponse(await shopify.handle_webhook(rt, body=body, headers=headers))


async def shopify_backfill(request: Request) -> Response:
    """`POST /api/v1/orders/sync/shopify` (admin): import every order from the Admin API."""
    await require(request, "admin")
    rt = runtime(request)
    async with shopify.ShopifyClient(shopify.config(rt.settings)) as client:
        result = await shopify.backfill(rt, client)
    return JSONResponse(result)


routes = [
    Route("/webhooks/shopify", shopify_webhook, methods=["POST"]),
    Route("/api/v1/orders/sync/shopify", shopify_backfill, methods=["POST"]),
    Route("/api/v1/orders/{external_id}", put_order, methods=["PUT"]),
    Route("/api/v1/orders/{external_id}", get_order, methods=["GET"]),
    Route("/api/v1/contacts/{id}/orders", contact_orders, methods=["GET"]),
]
