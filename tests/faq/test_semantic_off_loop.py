"""The semantic re-ranker's matching and editing run off the event loop (`faq.service`).

Its model takes ~10-25 ms a message and seconds to embed a big edit; on the loop that
would stall every webhook and websocket of the process meanwhile. The encoder here is a
stand-in for the model (the edge of this module's world): deterministic bag-of-letters
vectors, slowed down so that a blocked loop would be seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from faq.entries import validate_entry
from faq.service import FaqService
from tests.conftest import make_settings
from web.app import build_runtime

SLOW_SECONDS = 0.3


class SlowEncoder:
    """Unit-length letter-count vectors, each call taking `SLOW_SECONDS`."""

    def __init__(self) -> None:
        self.np = pytest.importorskip("numpy")

    def encode(self, texts: Sequence[str]) -> Any:
        time.sleep(SLOW_SECONDS)  # a CPU-bound model, as far as the loop can tell
        rows = self.np.zeros((len(texts), 26), dtype=self.np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    rows[i, ord(ch) - 97] += 1
        norms = self.np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / self.np.where(norms == 0, 1, norms)


async def longest_stall(work: Any) -> float:
    """The longest the event loop went without running a 5 ms ticker while `work` ran."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    try:
        await work
    finally:
        done.set()
        await task
    return max(gaps)


async def test_semantic_match_and_edits_leave_the_event_loop_free(sqlite_url: str) -> None:
    from faq.semantic import SemanticMatcher

    rt = await build_runtime(make_settings(sqlite_url, faq_semantic=True), migrate_db=False,
                             responders=lambda s: [])
    try:
        service = FaqService()
        service._encoder = SlowEncoder()  # type: ignore[assignment]
        shipping = await service.create(rt, validate_entry(
            {"question": "How long does shipping take?", "answer": "Two days."}))
        assert isinstance(await service.matcher(rt), SemanticMatcher)
        # Matching encodes the message; the loop keeps ticking meanwhile.
        assert await longest_stall(service.match(rt, "when does my parcel ship")) < SLOW_SECONDS / 2
        # An edit encodes the new phrasings; also off the loop.
        creating = asyncio.ensure_future(service.create(rt, validate_entry(
            {"question": "Do you offer gift wrapping?", "answer": "Yes."})))
        assert await longest_stall(creating) < SLOW_SECONDS / 2
        gift = creating.result()
        found = await service.match(rt, "gift wrapping please")
        assert {c.id for c in found.candidates} == {str(shipping.id), str(gift.id)}
    finally:
        await rt.drain()
        await rt.close()
