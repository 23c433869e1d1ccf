"""A new customer's first message (issue 7): CPU and statements, ingest vs FAQ responder.

    python -m bench.first_message_bench            # 200 messages per kind (about 30 s)
    python -m bench.first_message_bench --n 50     # fewer

In process, no HTTP: each message goes through `pipeline.ingest` (what every webhook
calls) on a temporary SQLite file, with the FAQ responder wired as `web/app.py` wires
it (`build_runtime(..., responders=faq.wiring.build_responders)`) and the shop FAQ
loaded; `rt.drain()` then waits for the responder. Every sender is new, so each
message opens a contact, an identity and a conversation. Kinds:

  order question   "Hello, a question about my order (ref ...)" (what `bench.loadgen`
                   sends first): handed over, reason order_reference
  unknown question no FAQ entry fits: handed over, not_confident
  asks for person  handed over with an acknowledgement to the customer (an outbox row)
  greeting         small talk: the bot stays silent (no hand-over)
  FAQ question     answered by the bot (`inbox.replies.bot_answer`: one plan, one commit)

Columns: CPU ms per message (`time.process_time`: every thread of this process, the
SQLite connection's included; the median of N), for ingest (the call) and the responder
(the drain after it), and the statements and commits each ran (counted in a second pass
with `before_cursor_execute` / `commit` listeners: a listener makes the one-hop SQLite
shell build a Connection, so CPU is measured without them).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

from sqlalchemy import event

from faq.cli import import_items, read_items
from faq.demo import SHOP_FAQ
from faq.wiring import build_responders
from inbox import pipeline
from inbox.runtime import Runtime
from inbox.settings import Settings
from inbox.types import Inbound, ThreadHints
from web.app import build_runtime

_UNKNOWN = ("Can I paint my fence purple with your brushes?",
            "Is the CEO a fan of jazz music?",
            "Do your llamas enjoy the autumn weather?",
            "Which planet is your warehouse manager from?")

KINDS: dict[str, Callable[[int], str]] = {
    "order question": lambda n: f"Hello, a question about my order (ref zq{n}q)",
    "unknown question": lambda n: _UNKNOWN[n % len(_UNKNOWN)],
    "asks for person": lambda n: "I want to talk to a human please",
    "greeting": lambda n: "hi there!",
    "FAQ question": lambda n: "How long does shipping take?",
}


@dataclass
class Row:
    kind: str
    ingest_ms: list[float] = field(default_factory=list)
    responder_ms: list[float] = field(default_factory=list)
    ingest_statements: list[int] = field(default_factory=list)
    responder_statements: list[int] = field(default_factory=list)
    ingest_commits: list[int] = field(default_factory=list)
    responder_commits: list[int] = field(default_factory=list)


_numbers = count(1)


def _sms(text: str) -> Inbound:
    n = next(_numbers)
    return Inbound(channel="sms", provider="twilio", provider_message_id=f"SMbench{n}",
                   sender=f"+1555{2000000 + n}", sender_kind="phone", text=text,
                   recipient="+15550009999", thread=ThreadHints())


class _Counter:
    """Statements and commits on the engine while attached."""

    def __init__(self, rt: Runtime) -> None:
        self.engine = rt.engine.sync_engine
        self.statements = 0
        self.commits = 0

    def _statement(self, *_args: Any) -> None:
        self.statements += 1

    def _commit(self, *_args: Any) -> None:
        self.commits += 1

    def __enter__(self) -> _Counter:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)

    def take(self) -> tuple[int, int]:
        found = (self.statements, self.commits)
        self.statements = self.commits = 0
        return found


async def _one(rt: Runtime, text: str) -> tuple[float, float]:
    start = time.process_time()
    await pipeline.ingest(rt, _sms(text))
    mid = time.process_time()
    await rt.drain()
    end = time.process_time()
    return (mid - start) * 1000, (end - mid) * 1000


async def run(n: int, kinds: list[str]) -> list[Row]:
    """Measure `n` first messages of each kind; returns one row per kind."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(database_url=url, secret_key="bench-secret-key-" + "x" * 32,
                            public_url="http://bench.example", twilio_account_sid="AC" + "b" * 32,
                            twilio_auth_token="bench-token", twilio_api_base="http://127.0.0.1:9")
        rt = await build_runtime(settings, migrate_db=True, responders=build_responders)
        try:
            items, problems = read_items(SHOP_FAQ)
            _created, _updated, bad = await import_items(rt, items)
            assert not problems and not bad, (problems, bad)
            rows = [Row(kind) for kind in kinds]
            for row in rows:  # warm up: matcher index, compiled statements
                for i in range(10):
                    await _one(rt, KINDS[row.kind](i))
            gc.collect()
            for i in range(n):  # interleaved, so drift hits every kind alike
                for row in rows:
                    ingest_ms, responder_ms = await _one(rt, KINDS[row.kind](i))
                    row.ingest_ms.append(ingest_ms)
                    row.responder_ms.append(responder_ms)
            with _Counter(rt) as counter:
                for i in range(min(n, 5)):
                    for row in rows:
                        await pipeline.ingest(rt, _sms(KINDS[row.kind](i)))
                        statements, commits = counter.take()
                        row.ingest_statements.append(statements)
                        row.ingest_commits.append(commits)
                        await rt.drain()
                        statements, commits = counter.take()
                        row.responder_statements.append(statements)
                        row.responder_commits.append(commits)
            return rows
        finally:
            await rt.drain()
            await rt.close()


def _same(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def table(rows: list[Row], n: int) -> str:
    """The rows as a printed table."""
    head = (f"{'first message from a new customer':<34}{'ingest ms':>10}{'responder ms':>14}"
            f"{'total ms':>10}{'statements ing/resp':>21}{'commits ing/resp':>18}")
    lines = [head, "-" * len(head)]
    for row in rows:
        ingest = statistics.median(row.ingest_ms)
        responder = statistics.median(row.responder_ms)
        total = statistics.median(a + b for a, b in zip(row.ingest_ms, row.responder_ms,
                                                        strict=True))
        statements = f"{_same(row.ingest_statements)} / {_same(row.responder_statements)}"
        commits = f"{_same(row.ingest_commits)} / {_same(row.responder_commits)}"
        lines.append(f"{row.kind:<34}{ingest:>10.2f}{responder:>14.2f}{total:>10.2f}"
                     f"{statements:>21}{commits:>18}")
    lines.append(f"CPU: median of {n} messages per kind (time.process_time, all threads).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200, help="messages per kind")
    parser.add_argument("--kind", action="append", choices=list(KINDS),
                        help="only these kinds (repeatable)")
    args = parser.parse_args(argv)
    kinds = args.kind or list(KINDS)
    print(f"Python {platform.python_version()} on {platform.machine()}; SQLite, in process")
    rows = asyncio.run(run(args.n, kinds))
    print(table(rows, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
