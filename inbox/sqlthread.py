"""What runs on a SQLite connection's own thread for `inbox.sqlrun`'s one-hop shell:
plans driven statement by statement, committed one by one or as a group.

    run_plan(raw, sync_conn, plan)      one plan, its own transaction, committed
    run_group(raw, sync_conn, plans)    several plans, one transaction and one commit,
                                        each in a savepoint: a plan that raises leaves
                                        no trace and the others commit all the same

Why a group: on one SQLite connection each commit writes every page the transaction
touched to the WAL (the message, event and search-index pages that the next message
touches again) and the thread hop around it costs the event loop a wake-up; plans that
queued while the connection was busy share both. A plan's outcome is known only after
the group's commit: when that commit fails, every plan of the group fails with it.

Statements are built once (`functools.cache`d Core or text statements with bind
parameters only) and compiled once per dialect, with SQLAlchemy's own type processors for
parameters and results. Listeners of the engine's `before_cursor_execute` and `commit`
events still hear of each statement and commit (with no execution context: none exists).
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect, Engine

T = TypeVar("T")

# A plan yields Query (answered with a list of rows) or, for `sqlrun.run_async` only, an
# async callable.
Plan = Generator[Any, Any, T]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement of a plan and its parameters; the plan receives its rows (a list of
    rows with attribute access by column name; empty for a statement without rows)."""

    statement: Any
    params: Mapping[str, Any] | None = None


class _DeferFlush:
    """A plan's request: commit my transaction without waiting for the WAL flush, and
    wait for durability after the commit instead (PostgreSQL; see `inbox.sqlrun`)."""

    def __repr__(self) -> str:
        return "DEFER_FLUSH"


# Yielded by a plan that holds a lock other writers queue for until its commit (the
# event lock): its commit then releases the lock before the flush, and whoever runs the
# plan still answers only once the commit is durable. Nothing to do on SQLite.
DEFER_FLUSH = _DeferFlush()


# (True, the plan's result) or (False, the exception it ended with).
Outcome = tuple[bool, Any]


def run_plan(raw: sqlite3.Connection, sync_conn: Connection | Engine, plan: Plan[T]) -> T:
    """Run `plan` and commit (roll back and re-raise when it raises)."""
    listener = _listener(sync_conn)
    if raw.isolation_level is None and not raw.in_transaction:
        raw.execute("BEGIN")  # autocommit mode: the plan's statements commit together
    try:
        result = _drive(raw, listener, sync_conn.dialect, plan)
        if raw.in_transaction:
            _commit(raw, listener)
        return result
    except BaseException:
        _rollback(raw)
        raise


def run_group(raw: sqlite3.Connection, sync_conn: Connection | Engine,
              plans: Sequence[Plan[Any]]) -> list[Outcome]:
    """Run `plans` in order in one transaction, each in a savepoint, and commit once.

    A plan that raises is rolled back to its savepoint (the others go on); when SQLite
    itself ended the transaction (a full disk, an I/O error) or the commit fails, every
    plan whose work it held fails with that error instead. Outcomes are in plan order.
    """
    if len(plans) == 1:
        try:
            return [(True, run_plan(raw, sync_conn, plans[0]))]
        except Exception as exc:  # noqa: BLE001 - raised in the plan's caller
            return [(False, exc)]
    listener = _listener(sync_conn)
    dialect = sync_conn.dialect
    outcomes: list[Outcome] = []
    held: list[int] = []  # plans whose work the open transaction holds

    def lose(exc: BaseException) -> None:
        for i in held:
            outcomes[i] = (False, exc)
        held.clear()

    try:
        for plan in plans:
            if not raw.in_transaction:
                raw.execute("BEGIN")  # a savepoint of its own would commit at its RELEASE
            raw.execute("SAVEPOINT plan")
            try:
                value = _drive(raw, listener, dialect, plan)
            except Exception as exc:  # noqa: BLE001 - raised in the plan's caller
                outcomes.append((False, exc))
                if raw.in_transaction:
                    raw.execute("ROLLBACK TO plan")
                    raw.execute("RELEASE plan")
                else:
                    lose(exc)  # SQLite rolled the whole transaction back
                continue
            raw.execute("RELEASE plan")
            held.append(len(outcomes))
            outcomes.append((True, value))
        if raw.in_transaction:
            try:
                _commit(raw, listener)
            except sa_exc.DBAPIError as exc:
                _rollback(raw)
                lose(exc)
        return outcomes
    except BaseException:
        _rollback(raw)
        raise


def _commit(raw: sqlite3.Connection, listener: Connection | None) -> None:
    # Commit, then tell the engine's `commit` listeners (None: nobody listens).
    try:
        raw.commit()
    except sqlite3.Error as exc:  # as SQLAlchemy reports a failed commit
        raise sa_exc.DBAPIError.instance("COMMIT", None, exc, sqlite3.Error) from exc
    if listener is not None:
        listener.dispatch.commit(listener)


def _rollback(raw: sqlite3.Connection) -> None:
    if raw.in_transaction:
        raw.rollback()


def _listener(sync_conn: Connection | Engine) -> Connection | None:
    # The Connection whose listeners hear of statements and commits, or None (nobody).
    if isinstance(sync_conn, Connection) and (sync_conn._has_events
                                              or sync_conn.engine._has_events):
        return sync_conn
    return None


def drive(plan: Plan[T], answer: Callable[[Any], Any]) -> T:
    """Run `plan` to its end, sending it `answer(request)` for each request it yields;
    returns the plan's result (what `answer` or the plan raises propagates)."""
    reply: Any = None
    while True:
        try:
            request = plan.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        reply = answer(request)


def _drive(raw: sqlite3.Connection, sync_conn: Connection | None, dialect: Dialect,
           plan: Plan[T]) -> T:
    def answer(request: Any) -> list[Any]:
        if request is DEFER_FLUSH:
            return []  # SQLite: a commit waits for no flush of others (one writer)
        if not isinstance(request, Query):
            raise TypeError(f"a one-hop plan yields Query only, not {request!r}")
        return _execute(raw, sync_conn, dialect, request)

    return drive(plan, answer)


def bind_args(prepared: _Prepared, params: Mapping[str, Any] | None) -> list[Any]:
    """`params` as the positional values of `prepared`'s SQL, through its bind processors
    (a value the statement bound itself when `params` lacks it); raises SQLAlchemy's
    StatementError for a value it cannot bind, as SQLAlchemy does."""
    params = params or {}
    args = []
    try:
        for name, bind in zip(prepared.names, prepared.binds, strict=True):
            value = params[name] if name in params else prepared.defaults[name]
            args.append(bind(value) if bind is not None else value)
    except Exception as exc:  # as SQLAlchemy reports a parameter it cannot bind
        raise sa_exc.StatementError(f"({type(exc).__module__}.{type(exc).__name__}) {exc}",
                                    prepared.sql, params, exc) from exc
    return args


def make_rows(prepared: _Prepared, fetched: Sequence[Sequence[Any]]) -> list[Any]:
    """Driver rows as a plan receives them: through the result processors, with
    attribute access by column name (none for a statement without columns)."""
    if prepared.row is None:
        return []
    make, results = prepared.row._make, prepared.results
    return [make([p(v) if p is not None else v for p, v in zip(results, r, strict=True)])
            for r in fetched]


@dataclass(frozen=True, slots=True)
class _Prepared:
    sql: str
    names: tuple[str, ...]  # parameters in positional order
    binds: tuple[Callable[[Any], Any] | None, ...]
    defaults: Mapping[str, Any]  # values bound in the statement itself
    results: tuple[Callable[[Any], Any] | None, ...]
    row: Any  # a namedtuple class, or None for a statement without rows
    plain: bool  # no parameter rendered at execution (an expanding IN, a literal)


# statement object -> its compiled form, per dialect and driver (statements are built
# once; the driver decides the parameter style).
_PREPARED: dict[tuple[Any, str, str], _Prepared] = {}


def prepare(statement: Any, dialect: Dialect) -> _Prepared:
    """`statement` compiled once for `dialect` (cached per statement object: statements
    are built once), with its positional parameter names, bind and result processors
    and a row class (None for a statement without columns)."""
    key = (statement, dialect.name, dialect.driver)
    found = _PREPARED.get(key)
    if found is not None:
        return found
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    binds = tuple(compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)
                  for n in names)
    defaults = {n: compiled.binds[n].value for n in names if not compiled.binds[n].required}
    columns = list(getattr(statement, "selected_columns", None)
                   or getattr(statement, "exported_columns", None) or ())
    results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    row = namedtuple("Row", [c.key for c in columns], rename=True) if columns else None  # type: ignore[misc]
    plain = not (compiled.literal_execute_params or compiled.post_compile_params)
    prepared = _Prepared(compiled.string, names, binds, defaults, results, row, plain)
    _PREPARED[key] = prepared
    return prepared


def _execute(raw: sqlite3.Connection, sync_conn: Connection | None, dialect: Dialect,
             query: Query) -> list[Any]:
    prepared = prepare(query.statement, dialect)
    args = bind_args(prepared, query.params)
    if sync_conn is not None:
        sync_conn.dispatch.before_cursor_execute(sync_conn, None, prepared.sql, args, None, False)
    try:
        cursor = raw.execute(prepared.sql, args)
        fetched = cursor.fetchall()
        cursor.close()
    except sqlite3.Error as exc:
        raise sa_exc.DBAPIError.instance(prepared.sql, args, exc, sqlite3.Error) from exc
    return make_rows(prepared, fetched)
