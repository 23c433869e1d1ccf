"""What runs on a SQLite connection's own thread for `inbox.sqlrun`'s one-hop shell:
plans driven statement by statement, committed one by one or as a group.

    run_plan(raw, sync_conn, plan)      one plan, its own transaction, committed
    run_group(raw, sync_conn, plans)    several plans, one transaction and one commit:
                                        a plan that raises leaves no trace and the
                                        others commit all the same

A plan may come as a function that makes it afresh (a `PlanSource`). A group made only
of those runs without savepoints: when one of them raises, the transaction is rolled
back and the group runs again, each plan in a savepoint, the failed one not again (its
exception is its outcome: it saw what it would have seen in a savepoint). A savepoint
and its release were a third of a group's statements, each a release and re-take of
the GIL that the event loop's thread competes for, and a plan seldom raises (a retried
webhook, a conversation whose status changed meanwhile).

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

# A plan, or a function without arguments that makes it (a plan that may run again).
PlanSource = Plan[T] | Callable[[], Plan[T]]


def start(source: PlanSource[T]) -> Plan[T]:
    """The plan `source` is or makes (a generator is not callable; its maker is)."""
    return source() if callable(source) else source


def run_plan(raw: sqlite3.Connection, sync_conn: Connection | Engine,
             source: PlanSource[T]) -> T:
    """Run the plan and commit (roll back and re-raise when it raises)."""
    plan = start(source)
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
              plans: Sequence[PlanSource[Any]]) -> list[Outcome]:
    """Run `plans` in order in one transaction and commit once.

    A plan that raises leaves no trace (the others go on); when SQLite itself ended the
    transaction (a full disk, an I/O error) or the commit fails, every plan whose work
    it held fails with that error instead. Outcomes are in plan order.
    """
    if len(plans) == 1:
        try:
            return [(True, run_plan(raw, sync_conn, plans[0]))]
        except Exception as exc:  # noqa: BLE001 - raised in the plan's caller
            return [(False, exc)]
    listener = _listener(sync_conn)
    dialect = sync_conn.dialect
    known: dict[int, Outcome] = {}
    if all(callable(p) for p in plans):
        done = _run_unguarded(raw, listener, dialect, plans)
        if isinstance(done, list):
            return done
        known = done  # one plan failed, all rolled back: again, in savepoints
    return _run_guarded(raw, listener, dialect, plans, known)


def _run_unguarded(raw: sqlite3.Connection, listener: Connection | None, dialect: Dialect,
                   plans: Sequence[PlanSource[Any]]) -> list[Outcome] | dict[int, Outcome]:
    # Every plan, no savepoint, one commit: their outcomes; or, when a plan raised, the
    # transaction rolled back and {its index: its outcome}.
    outcomes: list[Outcome] = []
    try:
        if not raw.in_transaction:
            raw.execute("BEGIN")
        for index, source in enumerate(plans):
            try:
                outcomes.append((True, _drive(raw, listener, dialect, start(source))))
            except Exception as exc:  # noqa: BLE001 - raised in the plan's caller
                _rollback(raw)
                return {index: (False, exc)}
        if raw.in_transaction:
            try:
                _commit(raw, listener)
            except sa_exc.DBAPIError as exc:
                _rollback(raw)
                return [(False, exc)] * len(plans)
        return outcomes
    except BaseException:
        _rollback(raw)
        raise


def _run_guarded(raw: sqlite3.Connection, listener: Connection | None, dialect: Dialect,
                 plans: Sequence[PlanSource[Any]], known: dict[int, Outcome]) -> list[Outcome]:
    # Each plan in a savepoint (those in `known` not run: that is their outcome).
    outcomes: list[Outcome] = []
    held: list[int] = []  # plans whose work the open transaction holds

    def lose(exc: BaseException) -> None:
        for i in held:
            outcomes[i] = (False, exc)
        held.clear()

    try:
        for index, source in enumerate(plans):
            if index in known:
                outcomes.append(known[index])
                continue
            if not raw.in_transaction:
                raw.execute("BEGIN")  # a savepoint of its own would commit at its RELEASE
            raw.execute("SAVEPOINT plan")
            try:
                value = _drive(raw, listener, dialect, start(source))
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
