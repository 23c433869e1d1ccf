"""Agents: creation, argon2 password checks, API tokens (stored only as hashes)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from inbox import store
from inbox.errors import BadInput, Conflict
from inbox.identity import canonical_email
from inbox.models import Agent, ApiToken
from inbox.runtime import Runtime
from inbox.types import utcnow

ROLES = ("admin", "agent", "faq_editor")
# Who may do what: admins everything; agents work conversations; FAQ editors the FAQ.
_HASHER = PasswordHasher()
TOKEN_PREFIX = "inbx_"


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash (False for no hash)."""
    if not password_hash:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    """The stored form of an API token (sha256: tokens are long random, not passwords)."""
    return hashlib.sha256(token.encode()).hexdigest()


async def create_agent(
    rt: Runtime, *, email: str, name: str, role: str, password: str | None = None
) -> tuple[Agent, str]:
    """Create an agent and a first API token; returns the agent and the token (shown once).

    Raises `BadInput` for an unknown role or bad email, `Conflict` if the email exists.
    """
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    address = canonical_email(email)
    if not name.strip():
        raise BadInput("name must not be empty")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        async with rt.sessions() as session, session.begin():
            agent = Agent(email=address, name=name.strip(), role=role,
                          password_hash=hash_password(password) if password else None)
            session.add(agent)
            await session.flush()
            session.add(ApiToken(agent_id=agent.id or 0, token_hash=token_digest(token)))
    except IntegrityError:
        raise Conflict(f"an agent with email {address} already exists") from None
    return agent, token


async def issue_token(rt: Runtime, *, agent_id: int, name: str = "cli") -> str:
    """A new API token for an existing agent."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with rt.sessions() as session, session.begin():
        session.add(ApiToken(agent_id=agent_id, token_hash=token_digest(token), name=name))
    return token


async def agent_for_token(session: AsyncSession, token: str) -> Agent | None:
    """The active agent owning this API token, or None."""
    result = await session.exec(  # type: ignore[call-overload]
        select(ApiToken).where(ApiToken.token_hash == token_digest(token))
    )
    row = result.scalars().first()
    if row is None:
        return None
    agent = await session.get(Agent, row.agent_id)
    if agent is None or not agent.is_active:
        return None
    row.last_used_at = utcnow()
    return agent


async def authenticate(session: AsyncSession, *, email: str, password: str) -> Agent | None:
    """The active agent with these credentials, or None."""
    try:
        address = canonical_email(email)
    except BadInput:
        return None
    agent = await store.agent_by_email(session, email=address)
    if agent is None or not agent.is_active:
        verify_password(None, password)
        return None
    return agent if verify_password(agent.password_hash, password) else None
