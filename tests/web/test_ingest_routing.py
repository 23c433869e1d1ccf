"""A customer's message that moves a conversation between views (issue 7): its ingest
event says where the conversation was (`previous`), so a socket watching the view it
leaves hears of it even on a worker whose router never saw the conversation."""

from __future__ import annotations

from typing import Any

import pytest

from inbox import pipeline
from tests.inbox.fast_db import database_url, sqlite_template  # noqa: F401
from tests.inbox.test_pipeline import sms as inbound
from tests.support.server import LiveServer
from tests.web.test_agent_routing import frames_until, quiet, seqs, watchers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


async def test_follow_up_that_reopens_a_resolved_conversation_reaches_the_resolved_view(
    server: LiveServer,
) -> None:
    cid = (await pipeline.ingest(server.rt, inbound("my parcel is late"))).conversation_id
    await pipeline.set_status(server.rt, conversation_id=cid, status="resolved")
    async with watchers(server, {"status": "resolved"}, {"status": "pending"}) as (resolved,
                                                                                  pending):
        server.rt.hub.states.clear()  # this worker knows nothing of the conversation
        await pipeline.ingest(server.rt, inbound("it still has not come"))
        got: list[dict[str, Any]] = await frames_until(
            resolved, lambda f: f["type"] == "message.created")
        assert got[-1]["conversation_id"] == cid
        assert got[-1]["conversation"]["status"] == "open"
        assert got[-1]["previous"] == {"status": "resolved", "assignee_id": None,
                                       "channel": "sms", "handled_by": "bot"}
        # Never in the pending view, and known not to have been: nothing for that socket.
        assert seqs(await quiet(pending)) == []
