"""`inbox.db.UTCDateTime` on SQLite: its fast bind path writes exactly the text the
general path (this type's processor, then SQLAlchemy's DATETIME) writes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects.sqlite import aiosqlite
from sqlalchemy.types import TypeDecorator

from inbox.db import UTCDateTime


def test_the_sqlite_bind_text_equals_the_general_path_and_reads_back_the_same_instant() -> None:
    dialect = aiosqlite.dialect()
    column = UTCDateTime().dialect_impl(dialect)
    fast = column.bind_processor(dialect)
    general = TypeDecorator.bind_processor(column, dialect)
    read = column.result_processor(dialect, None)
    assert fast is not general
    rng = random.Random(7)
    for _ in range(5000):
        offset = timezone(timedelta(minutes=rng.randrange(-12 * 60, 14 * 60, 15)))
        value = datetime(rng.randint(2, 9998), rng.randint(1, 12), rng.randint(1, 28),
                         rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                         rng.choice((0, rng.randint(0, 999_999))),
                         tzinfo=rng.choice((UTC, offset)))
        text = fast(value)
        assert text == general(value)
        assert read(text) == value and read(text).tzinfo is UTC
    assert fast(None) is None
    with pytest.raises(ValueError, match="naive"):
        fast(datetime(2026, 1, 2, 3, 4, 5))


def test_the_sqlite_read_path_gives_the_general_paths_values() -> None:
    dialect = aiosqlite.dialect()
    column = UTCDateTime().dialect_impl(dialect)
    fast = column.result_processor(dialect, None)
    general = TypeDecorator.result_processor(column, dialect, None)
    assert fast is not general
    rng = random.Random(11)
    texts = ["2026-01-02 03:04:05", "2026-01-02 03:04:05.5", "2026-01-02 03:04:05.000000",
             "2026-01-02 03:04:05.123456+02:00"]  # a short fraction, an offset: as before
    for _ in range(3000):
        texts.append(datetime(rng.randint(2, 9998), rng.randint(1, 12), rng.randint(1, 28),
                              rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                              rng.choice((0, rng.randint(0, 999_999)))
                              ).isoformat(" ", "microseconds"))
    for text in texts:
        value = fast(text)
        assert value == general(text) and value.tzinfo is UTC, text
    assert fast(None) is None
