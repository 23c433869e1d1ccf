"""Seed a big SQLite inbox for the scale benchmark: N conversations, M messages.

    python -m bench.seed_big PATH [--conversations 100000] [--messages 1000000]

The schema comes from the product's migrations (`web.migrate.upgrade`); the rows go in
with raw `sqlite3.executemany` in one transaction, the secondary indexes dropped first
and rebuilt after (much faster than inserting through them), then `ANALYZE`. Each
conversation belongs to its own contact (one phone identity); messages alternate
customer / agent, timestamps spread over the last 90 days, so the newest-activity
ordering and keyset cursors look like a real inbox. About 1 in 500 messages mentions
"warranty" (the selective search term); "order" is in most of them. `unanswered` open
FAQ questions (20,000 by default) go into `faq_unanswered`, built from a few hundred
distinct questions, so the editor's grouping has real work to do.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import Any

TEXTS_IN = (
    "Hi, where is my order? It has been a week.",
    "Can I change the delivery address for my order?",
    "The parcel arrived damaged, what do I do?",
    "Do you ship to Canada?",
    "I would like to return the shoes, they are too small.",
    "Is the blue jacket back in stock soon?",
    "My discount code does not work at checkout.",
    "Thanks, that helped!",
)
TEXTS_OUT = (
    "Thanks for writing! Your order is on its way, tracking follows by email.",
    "Sure, I have updated the address on your order.",
    "Sorry about that! I have started a replacement for your order.",
    "Yes, we ship to Canada in 5-8 working days.",
    "No problem, here is your return label for the order.",
)
RARE = "Is the warranty still valid after two years?"
TABLES = ("contact", "identity", "conversation", "message")
# Unanswered questions: a topic x a product (+ an occasional typo) gives ~600 distinct
# questions that group into a few hundred groups.
ASKS = ("do you sell {}?", "is the {} back in stock", "how much is shipping for a {}",
        "can I return a {} I bought on sale", "does the {} come in other colours",
        "what size {} should I get", "is there a warranty on the {}", "can you gift wrap a {}",
        "when will the {} be delivered", "is the {} vegan", "can I pay for a {} in instalments",
        "do you have a discount on the {}")
PRODUCTS = ("gift box", "blue jacket", "rain coat", "wool hat", "leather belt", "tote bag",
            "sneakers", "silk scarf", "denim skirt", "yoga mat", "water bottle", "phone case",
            "desk lamp", "scented candle", "linen shirt", "bike helmet", "travel pillow",
            "sun glasses", "winter boots", "cotton socks", "ceramic mug", "hiking backpack",
            "garden chair", "cookbook", "kids raincoat", "wall clock", "bath towel",
            "picture frame", "laptop sleeve", "wool blanket", "running shorts", "tea set",
            "umbrella", "card holder", "pet bed", "flower vase", "chess set", "beanie",
            "swim suit", "night lamp", "coffee grinder", "cutting board", "knife set",
            "face cream", "hair dryer", "travel mug", "puzzle", "board game", "stuffed bear",
            "garden hose")


def _ts(dt: datetime) -> str:
    # The product's UTCDateTime stores naive UTC in SQLite's DATETIME text form.
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def seed(path: str, *, conversations: int = 100_000, messages: int = 1_000_000,
         unanswered: int = 20_000, seed_value: int = 7) -> dict[str, Any]:
    """Create the schema at `path` (a fresh file) and fill it; returns counts and timings."""
    from web.migrate import upgrade

    t0 = time.perf_counter()
    upgrade(f"sqlite+aiosqlite:///{path}")
    rng = random.Random(seed_value)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-200000")
    indexes = [(name, sql) for name, tbl, sql in con.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")
        if tbl in TABLES]
    # Search-index triggers (the FTS5 tables of migration 0005) go too: one 'rebuild' of
    # each index after the inserts is faster than a million trigger calls.
    triggers = [(name, sql) for name, tbl, sql in con.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type='trigger'") if tbl in TABLES]
    fts = [name for (name,) in con.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND sql LIKE 'CREATE VIRTUAL TABLE%fts5%'")]
    con.execute("BEGIN")
    for name, _sql in indexes:
        con.execute(f'DROP INDEX "{name}"')
    for name, _sql in triggers:
        con.execute(f'DROP TRIGGER "{name}"')

    now = datetime.now(UTC).replace(tzinfo=None)
    start = now - timedelta(days=90)
    span = (now - start).total_seconds()
    per_conv = max(1, messages // conversations)
    extra = messages - per_conv * conversations  # the first `extra` conversations get one more

    contact_rows = []
    identity_rows = []
    conv_rows = []
    plan = []  # (conversation id, first message time, message count)
    for cid in range(1, conversations + 1):
        n = per_conv + (1 if cid <= extra else 0)
        first = start + timedelta(seconds=rng.random() * span * 0.98)
        last = first + timedelta(minutes=7 * (n - 1))
        if last > now:
            last = now
        created = _ts(first)
        phone = f"+1303{cid:07d}"
        contact_rows.append((cid, f"Customer {cid}", created, created))
        identity_rows.append((cid, cid, "phone", phone, phone, 0, created))
        status = rng.choices(("open", "pending", "resolved"), (5, 1, 4))[0]
        conv_rows.append((cid, cid, cid, "sms", "twilio", "+15550009999", "+15550009999", phone,
                          status, "human", _ts(last), _ts(last), 0, 0, created,
                          _ts(last) if status == "resolved" else None))
        plan.append((cid, first, n))
    con.executemany("INSERT INTO contact (id, name, created_at, updated_at) VALUES (?,?,?,?)",
                    contact_rows)
    con.executemany("INSERT INTO identity (id, contact_id, kind, value, raw, opted_out, created_at)"
                    " VALUES (?,?,?,?,?,?,?)", identity_rows)
    con.executemany(
        "INSERT INTO conversation (id, contact_id, identity_id, channel, provider, thread_key,"
        " our_address, customer_address, status, handled_by, last_activity_at, last_customer_at,"
        " unread_count, bot_answers, created_at, resolved_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        conv_rows)
    del contact_rows, identity_rows, conv_rows
    t_conv = time.perf_counter()

    def message_rows() -> Any:
        mid = 0
        rand = rng.random
        for cid, first, n in plan:
            for k in range(n):
                mid += 1
                at = _ts(first + timedelta(minutes=7 * k))
                if k % 2 == 0:
                    text = RARE if rand() < 0.002 else TEXTS_IN[mid % len(TEXTS_IN)]
                    yield (mid, cid, "sms", "in", "customer", text, "[]", f"SMseed{mid:010d}",
                           0, "[]", "{}", "{}", at, None)
                else:
                    yield (mid, cid, "sms", "out", "agent", TEXTS_OUT[mid % len(TEXTS_OUT)], "[]",
                           f"SMout{mid:010d}", 0, "[]", "{}", "{}", at, "delivered")

    con.executemany(
        "INSERT INTO message (id, conversation_id, channel, direction, author_kind, text,"
        " attachments, provider_message_id, private, flags, meta, raw, created_at, delivery_status)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", message_rows())
    t_msg = time.perf_counter()
    con.executemany(
        "INSERT INTO faq_unanswered (id, conversation_id, text, reason, created_at)"
        " VALUES (?,?,?,?,?)", unanswered_rows(rng, unanswered, conversations, start, span))
    for _name, sql in indexes:
        con.execute(sql)
    t_index = time.perf_counter()
    for name in fts:
        con.execute(f"INSERT INTO \"{name}\"(\"{name}\") VALUES ('rebuild')")
    if con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'search_index_state'").fetchone()[0]:
        # Migration 0006: every message is in the index now (its batches start after).
        con.execute("UPDATE search_index_state SET indexed_upto = "
                    "(SELECT coalesce(max(id), 0) FROM message) WHERE tbl = 'message'")
    for _name, sql in triggers:
        con.execute(sql)
    t_fts = time.perf_counter()
    con.execute("COMMIT")
    con.execute("ANALYZE")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in (*TABLES, "faq_unanswered")}
    con.close()
    t_end = time.perf_counter()
    return {"counts": counts, "seconds": t_end - t0, "rows_s": t_msg - t0,
            "conversations_s": t_conv - t0, "index_s": t_index - t_msg,
            "search_index_s": t_fts - t_index}


def unanswered_rows(rng: random.Random, n: int, conversations: int, start: datetime,
                    span: float) -> Any:
    """`n` open unanswered questions, oldest first, on random conversations."""
    times = sorted(rng.random() * span for _ in range(n))
    for qid, offset in enumerate(times, start=1):
        text = rng.choice(ASKS).format(rng.choice(PRODUCTS))
        if rng.random() < 0.2:
            text = text.capitalize() + "??"
        yield (qid, rng.randint(1, max(1, conversations)), text, "low_confidence",
               _ts(start + timedelta(seconds=offset)))


def keyset_cursor(path: str, rank: int) -> tuple[str, int]:
    """The API cursor that starts the page after the `rank`-th conversation (newest first),
    as `web/routes/api.py` encodes it, and that conversation's id."""
    import base64

    con = sqlite3.connect(path)
    at, cid = con.execute(
        "SELECT last_activity_at, id FROM conversation ORDER BY last_activity_at DESC, id DESC "
        "LIMIT 1 OFFSET ?", (rank,)).fetchone()
    con.close()
    iso = datetime.strptime(at, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).isoformat()
    return base64.urlsafe_b64encode(f"{iso}|{cid}".encode()).decode(), cid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.seed_big")
    p.add_argument("path")
    p.add_argument("--conversations", type=int, default=100_000)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--unanswered", type=int, default=20_000)
    args = p.parse_args(argv)
    print(json.dumps(seed(args.path, conversations=args.conversations, messages=args.messages,
                          unanswered=args.unanswered)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
