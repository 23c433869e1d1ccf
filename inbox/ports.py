"""The seams the core defines and the outer packages implement.

`inbox` imports none of `connectors`, `faq` or `web`; they implement these protocols and
`web/app.py` wires the concrete ones into a `Runtime`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from inbox.types import Inbound, Outbound, SendResult, StatusUpdate, WebhookRequest

if TYPE_CHECKING:  # pragma: no cover
    from inbox.events import EventOut
    from inbox.runtime import Runtime


@runtime_checkable
class Connector(Protocol):
    """A provider adapter: inbound requests in, outbound messages out.

    `provider` is the registry name ("twilio", "meta", "email", "webchat"); `channels` the
    customer channels it carries. `verify` raises `SignatureInvalid` for a request that
    is not provably from the provider; `parse`/`parse_status` raise `UnsupportedPayload`
    for one they cannot read and return [] for one that carries nothing for us. `send`
    raises `SendFailed` (with `retryable`) when the provider refuses.
    """

    provider: str
    channels: tuple[str, ...]

    def verify(self, request: WebhookRequest) -> None: ...

    def parse(self, request: WebhookRequest) -> list[Inbound]: ...

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]: ...

    async def send(self, outbound: Outbound) -> SendResult: ...


class Responder(Protocol):
    """Something that reacts to committed events (FAQ auto-answer, assignment).

    Runs after commit, off the request path; acts only through `inbox.pipeline`, so what
    it does is stored, evented and dispatched like anything else. Must not raise for a
    single bad event (log and carry on).
    """

    name: str

    async def handle(self, event: EventOut, runtime: Runtime) -> None: ...


class OrderSource(Protocol):
    """Where a shop's orders come from (our own store, Shopify, ...)."""

    name: str

    async def orders_for(
        self, *, emails: Sequence[str], phones: Sequence[str]
    ) -> list[dict[str, Any]]: ...
