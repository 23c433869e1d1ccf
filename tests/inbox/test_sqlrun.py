"""Plans on SQLite (`inbox.sqlrun`): plans that wait for the one connection run as a group
in one transaction, yet each commits or fails as if it ran alone, and nobody hears of
success before the commit that holds it; a plan on an idle connection runs alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Integer, column, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import sqlrun
from inbox.db import make_engine
from inbox.sqlrun import Plan, Query

ADD = text("INSERT INTO item (name) VALUES (:name) RETURNING id").columns(column("id", Integer))
ADD_CHILD = text("INSERT INTO child (parent_id) VALUES (:parent_id)")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A SQLite engine as the app makes it, with two small tables."""
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}")
    async with eng.begin() as conn:
        await conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
        await conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        # Checked at COMMIT, not at the INSERT: a commit that fails.
        await conn.execute(text(
            "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) "
            "DEFERRABLE INITIALLY DEFERRED)"))
    try:
        yield eng
    finally:
        await eng.dispose()


def add(name: str, *, then_fail: bool = False) -> Plan[int]:
    (row,) = yield Query(ADD, {"name": name})
    if then_fail:
        raise LookupError(f"plan {name} gave up")
    return int(row.id)


def add_orphan() -> Plan[None]:
    yield Query(ADD_CHILD, {"parent_id": 404})


async def names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT name FROM item ORDER BY id"))).scalars())


def nothing() -> Plan[None]:
    return
    yield  # a plan (a generator) with no statement


async def run_all(engine: AsyncEngine, *plans: Plan[Any]) -> list[Any]:
    """Every plan started at once, while the connection is busy with another (the first
    plan on an idle connection runs alone), so they queue for it together."""
    _busy, *results = await asyncio.gather(
        sqlrun.run(engine, nothing()), *(sqlrun.run(engine, p) for p in plans),
        return_exceptions=True)
    return results


async def test_plans_started_together_each_return_their_own_result(engine: AsyncEngine) -> None:
    results = await run_all(engine, *(add(f"n{i}") for i in range(20)))

    assert await names(engine) == [f"n{i}" for i in range(20)]
    assert results == list(range(1, 21))


async def test_a_plan_that_raises_leaves_no_trace_and_the_others_commit(engine: AsyncEngine) -> None:
    results = await run_all(engine, add("a"), add("b", then_fail=True), add("c"))

    assert await names(engine) == ["a", "c"]
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], LookupError)


async def test_a_plan_refused_by_the_database_fails_alone(engine: AsyncEngine) -> None:
    results = await run_all(engine, add("same"), add("same"), add("other"))

    assert await names(engine) == ["same", "other"]
    assert isinstance(results[1], IntegrityError)
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)


async def test_when_the_commit_fails_every_plan_it_held_fails(engine: AsyncEngine) -> None:
    results = await run_all(engine, add("before"), add_orphan(), add("after"))

    assert all(isinstance(r, IntegrityError) for r in results)
    assert await names(engine) == []
    assert await sqlrun.run(engine, add("later")) == 1  # the connection is usable again


async def test_a_lone_plan_that_raises_rolls_back(engine: AsyncEngine) -> None:
    with pytest.raises(LookupError):
        await sqlrun.run(engine, add("x", then_fail=True))

    assert await names(engine) == []


async def test_a_plan_on_an_idle_connection_commits_without_waiting_for_later_ones(
    engine: AsyncEngine,
) -> None:
    results = await asyncio.gather(sqlrun.run(engine, add("first")), sqlrun.run(engine, add_orphan()),
                                   return_exceptions=True)

    assert results[0] == 1 and isinstance(results[1], IntegrityError)
    assert await names(engine) == ["first"]


# Plans given as their makers: a group of them runs without savepoints and, when one
# raises, runs again in savepoints, the failed one not again.

class Maker:
    """Makes `add(name)` plans and counts how many it made."""

    def __init__(self, name: str, *, then_fail: bool = False) -> None:
        self.name, self.then_fail, self.made = name, then_fail, 0

    def __call__(self) -> Plan[int]:
        self.made += 1
        return add(self.name, then_fail=self.then_fail)


async def test_plan_makers_started_together_each_return_their_own_result(engine: AsyncEngine) -> None:
    makers = [Maker(f"m{i}") for i in range(20)]
    results = await run_all(engine, *makers)  # type: ignore[arg-type]

    assert results == list(range(1, 21))
    assert await names(engine) == [f"m{i}" for i in range(20)]
    assert [m.made for m in makers] == [1] * 20  # nothing ran twice


async def test_a_made_plan_that_raises_leaves_no_trace_and_runs_once(engine: AsyncEngine) -> None:
    makers = [Maker("a"), Maker("b", then_fail=True), Maker("c"), Maker("a")]
    results = await run_all(engine, *makers)  # type: ignore[arg-type]

    assert await names(engine) == ["a", "c"]
    assert results[0] == 1 and results[2] == 2  # the rerun's ids: nothing of the first run left
    assert isinstance(results[1], LookupError)
    assert isinstance(results[3], IntegrityError)  # the second "a" still sees the first
    assert [m.made for m in makers] == [2, 1, 1, 1]  # those after it had not started


async def test_made_and_given_plans_in_one_group_each_commit_or_fail_alone(engine: AsyncEngine) -> None:
    results = await run_all(engine, Maker("x"), add("y", then_fail=True), Maker("z"))  # type: ignore[arg-type]

    assert await names(engine) == ["x", "z"]
    assert isinstance(results[1], LookupError)


async def test_when_the_commit_of_made_plans_fails_every_one_fails(engine: AsyncEngine) -> None:
    results = await run_all(engine, Maker("before"), add_orphan, Maker("after"))  # type: ignore[arg-type]

    assert all(isinstance(r, IntegrityError) for r in results)
    assert await names(engine) == []
    assert await sqlrun.run(engine, Maker("later")) == 1
