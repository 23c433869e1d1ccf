"""Who is calling, and may they: API tokens, session cookies, roles, CSRF.

Every route states the roles it allows (`require(request, "admin", "agent")`). Cookie
sessions must also send the CSRF token on unsafe methods; Bearer tokens need not (a
browser never attaches them by itself).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from inbox.agents import agent_for_token
from inbox.errors import Forbidden, NotAuthenticated
from inbox.models import Agent
from web.http import runtime

CONVERSATION_ROLES = ("admin", "agent")
FAQ_ROLES = ("admin", "faq_editor")
ALL_ROLES = ("admin", "agent", "faq_editor")
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated agent and how they proved it."""

    id: int
    name: str
    email: str
    role: str
    via: str  # "token" | "session"


def _caller(agent: Agent, via: str) -> Caller:
    return Caller(agent.id or 0, agent.name, agent.email, agent.role, via)


async def identify(conn: HTTPConnection, *, allow_query_token: bool = False) -> Caller | None:
    """The caller of a request or websocket, or None when unauthenticated."""
    rt = runtime(conn)  # type: ignore[arg-type]
    header = conn.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    if token is None and allow_query_token:
        token = conn.query_params.get("token")
    if token:
        async with rt.sessions() as session, session.begin():
            agent = await agent_for_token(session, token)
        return _caller(agent, "token") if agent else None
    agent_id = conn.session.get("agent_id") if "session" in conn.scope else None
    if isinstance(agent_id, int):
        async with rt.sessions() as session:
            agent = await session.get(Agent, agent_id)
        if agent is not None and agent.is_active and conn.session.get("role") == agent.role:
            return _caller(agent, "session")
    return None


async def require(conn: HTTPConnection, *roles: str, allow_query_token: bool = False) -> Caller:
    """The caller, if authenticated with one of `roles` (and CSRF-clean); else raise."""
    caller = await identify(conn, allow_query_token=allow_query_token)
    if caller is None:
        raise NotAuthenticated("log in, or send Authorization: Bearer <API token>")
    if roles and caller.role not in roles:
        raise Forbidden(f"the {caller.role} role may not do this (needs {' or '.join(roles)})")
    method = conn.scope.get("method")
    if caller.via == "session" and method in _UNSAFE:
        check_csrf(conn, conn.headers.get("x-csrf-token"))
    if caller.via == "session" and conn.scope.get("type") == "websocket":
        check_origin(conn)
    return caller


def check_origin(conn: HTTPConnection) -> None:
    """Raise `Forbidden` for a cookie-authenticated socket opened by a page elsewhere.

    Browsers attach the session cookie to a WebSocket handshake from another origin
    (same-site pages even with SameSite=Lax) and sockets have no CSRF token, so without
    this any page could read the agent event stream (cross-site WebSocket hijacking).
    """
    origin = conn.headers.get("origin")
    if origin is None:  # not a browser
        return
    allowed = {conn.headers.get("host", ""), urlsplit(runtime(conn).settings.public_url).netloc}  # type: ignore[arg-type]
    if urlsplit(origin).netloc not in allowed:
        raise Forbidden(f"a session socket from {origin} is not allowed")


def csrf_token(conn: HTTPConnection) -> str:
    """This session's CSRF token (created on first use)."""
    token = conn.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        conn.session["csrf"] = token
    return token


def check_csrf(conn: HTTPConnection, sent: str | None) -> None:
    """Raise `Forbidden` unless `sent` is this session's CSRF token."""
    expected = conn.session.get("csrf")
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected, sent):
        raise Forbidden("missing or wrong CSRF token")


def log_in(conn: HTTPConnection, agent: Agent) -> None:
    """Start a fresh session for `agent` (a new CSRF token: no fixation)."""
    conn.session.clear()
    conn.session["agent_id"] = agent.id
    conn.session["role"] = agent.role
    conn.session["csrf"] = secrets.token_urlsafe(32)


def log_out(conn: HTTPConnection) -> None:
    """End the session."""
    conn.session.clear()
