"""A stand-in for the providers' send APIs, mounted only by `inbox serve --demo-providers`.

With no Twilio or Meta account, the demo's outbound replies go here and are answered
the way the providers answer (a message id, "queued"), so the inbox shows them sent.
It never runs in production: `create_app` mounts it only when INBOX_DEMO_PROVIDERS=1.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def twilio_messages(request: Request) -> Response:
    sid = "SM" + uuid.uuid4().hex
    form = await request.form(max_files=0)
    return JSONResponse({"sid": sid, "status": "queued", "to": form.get("To"),
                         "from": form.get("From"), "body": form.get("Body"),
                         "account_sid": request.path_params["account"]}, status_code=201)


async def graph_messages(request: Request) -> Response:
    return JSONResponse({"messaging_product": "whatsapp",
                         "messages": [{"id": "wamid." + uuid.uuid4().hex}]})


routes = [
    Route("/_demo/twilio/2010-04-01/Accounts/{account}/Messages.json", twilio_messages,
          methods=["POST"]),
    Route("/_demo/graph/{phone}/messages", graph_messages, methods=["POST"]),
]
