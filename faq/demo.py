"""Demo FAQ: the shop FAQ in `faq/data/shop_faq.json`, seeded once (`inbox demo`)."""

from __future__ import annotations

import logging
from pathlib import Path

from faq import store
from faq.cli import import_items, read_items
from inbox.runtime import Runtime

log = logging.getLogger(__name__)

SHOP_FAQ = Path(__file__).resolve().parent / "data" / "shop_faq.json"


async def seed(rt: Runtime) -> None:
    """Import the shop FAQ when the FAQ is empty (running the demo twice adds nothing)."""
    async with rt.sessions() as session:
        if await store.count_entries(session):
            return
    items, problems = read_items(SHOP_FAQ)
    _created, _updated, bad = await import_items(rt, items)
    for problem in [*problems, *bad]:
        log.warning("demo FAQ: %s", problem)
