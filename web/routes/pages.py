"""Server-rendered pages: login, logout, the agent inbox shell, the web-chat widget and its demo shop."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from inbox.agents import authenticate
from web.auth import csrf_token, check_csrf, identify, log_in, log_out
from web.http import runtime
from web.static_paths import STATIC_DIR
from web.templating import templates


async def login_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {
        "csrf": csrf_token(request), "error": None, "email": ""})


async def login_submit(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    check_csrf(request, str(form.get("csrf") or ""))
    email, password = str(form.get("email") or ""), str(form.get("password") or "")
    async with runtime(request).sessions() as session:
        agent = await authenticate(session, email=email, password=password)
    if agent is None:
        return templates.TemplateResponse(request, "login.html", {
            "csrf": csrf_token(request), "error": "Wrong email or password.", "email": email},
            status_code=401)
    log_in(request, agent)
    target = "/faq" if agent.role == "faq_editor" else "/"
    return RedirectResponse(target, status_code=303)


async def logout(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=5)
    check_csrf(request, str(form.get("csrf") or ""))
    log_out(request)
    return RedirectResponse("/login", status_code=303)


async def inbox_page(request: Request) -> Response:
    caller = await identify(request)
    if caller is None:
        return RedirectResponse("/login", status_code=303)
    return templates.TemplateResponse(request, "inbox.html", {
        "csrf": csrf_token(request), "agent": caller})


async def demo_page(request: Request) -> Response:
    """A pretend shop hosting the widget with one script tag (`?email_after=` seconds)."""
    raw = request.query_params.get("email_after", "60")
    email_after = int(raw) if raw.isdigit() and 0 < int(raw) <= 3600 else 60
    return templates.TemplateResponse(request, "demo.html", {
        "title": "Questions? Chat with us", "email_after": email_after})


async def widget_js(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "widget.js", media_type="application/javascript",
                        headers={"Cache-Control": "no-cache"})


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/", inbox_page, methods=["GET"]),
    Route("/widget.js", widget_js, methods=["GET"]),
    Route("/demo", demo_page, methods=["GET"]),
]
