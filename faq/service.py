"""The FAQ as one process sees it: the entries in the database and one matcher index.

The API, the importer and the auto-answer responder share one `FaqService` per
process (kept in ``rt.extras["faq"]``, see `service_for`). The index is built lazily
from the enabled entries on first use and then updated incrementally when an entry is
saved or deleted here, after the transaction commits. Another process (a second
worker, the `inbox faq import` command) may edit the FAQ too: every
`REFRESH_SECONDS` the service compares a cheap fingerprint of the table (count and
latest update) and rebuilds the index when it changed.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError

from faq import store
from faq.matcher import FaqDoc, Matcher, MatchResult
from faq.normalise import fold
from faq.policy import Decision, EntryFacts, Policy, Situation, confident, judge, screen
from faq.semantic import MiniLMEncoder, SemanticMatcher
from faq.store import FaqEntry
from inbox.errors import Conflict, NotFound
from inbox.runtime import Runtime
from inbox.settings import Settings
from inbox.types import CHANNELS

# How stale another process's edits may look to this one's matcher.
REFRESH_SECONDS = 5.0


def policy_from_settings(settings: Settings, env: Mapping[str, str] | None = None) -> Policy:
    """The auto-answer policy configured by `settings.extra` or the environment
    (INBOX_FAQ_THRESHOLD, INBOX_FAQ_MIN_MARGIN, INBOX_FAQ_MAX_BOT_ANSWERS,
    INBOX_FAQ_CHANNELS as a comma-separated list); unset knobs keep their defaults."""
    source = {**(os.environ if env is None else env), **settings.extra}
    default = Policy()

    def number(name: str, fallback: float) -> float:
        raw = source.get(name)
        if not raw:
            return fallback
        try:
            return float(raw)
        except ValueError:
            raise SystemExit(f"{name} must be a number, got {raw!r}") from None

    channels = default.channels
    if source.get("INBOX_FAQ_CHANNELS") is not None:
        wanted = {c.strip().lower() for c in source["INBOX_FAQ_CHANNELS"].split(",") if c.strip()}
        channels = tuple(c for c in CHANNELS if c in wanted)
    return Policy(
        threshold=number("INBOX_FAQ_THRESHOLD", default.threshold),
        min_margin=number("INBOX_FAQ_MIN_MARGIN", default.min_margin),
        max_bot_answers=int(number("INBOX_FAQ_MAX_BOT_ANSWERS", default.max_bot_answers)),
        channels=channels,
    )


def doc_for(entry: FaqEntry) -> FaqDoc:
    """The matcher's view of an entry."""
    return FaqDoc(str(entry.id), entry.question, tuple(entry.alternates))


def facts_for(entry: FaqEntry) -> EntryFacts:
    """The policy's view of an entry."""
    return EntryFacts(id=entry.id or 0, enabled=entry.enabled, channels=tuple(entry.channels))


class FaqService:
    """Entries, the matcher index and the policy, for one process."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self._matcher: Matcher | SemanticMatcher | None = None
        # The embedding model, loaded once per process when INBOX_FAQ_SEMANTIC is on.
        self._encoder: MiniLMEncoder | None = None
        self._fingerprint: tuple[int, Any] | None = None
        self._checked_at = 0.0
        self._lock = asyncio.Lock()
        self._applied = 0  # edits reflected by _apply, to spot one during a build
        # The semantic index is matched and edited in worker threads: one at a time.
        self._index_lock = threading.Lock()

    # --- index ------------------------------------------------------------------------
    async def matcher(self, rt: Runtime) -> Matcher | SemanticMatcher:
        """The index, built on first use and rebuilt when another process edited; the
        semantic re-ranker (`faq.semantic`) when the settings switch it on."""
        if self._matcher is not None and time.monotonic() - self._checked_at < REFRESH_SECONDS:
            return self._matcher
        async with self._lock:
            async with rt.sessions() as session:
                fingerprint = await store.fingerprint(session)
                if self._matcher is None or fingerprint != self._fingerprint:
                    entries = await store.list_entries(session, enabled_only=True)
                    docs = [doc_for(e) for e in entries]
                    # Building takes 0.1 s at 100 entries, ~20 s at 10,000, and the
                    # semantic encoding of the phrasings seconds more: never on the loop.
                    build = self._semantic if rt.settings.faq_semantic else Matcher
                    applied = self._applied
                    self._matcher = await asyncio.to_thread(build, docs)
                    self._fingerprint = fingerprint
                    if self._applied != applied:
                        # An edit landed while it was built, from entries read before it:
                        # the next call compares fingerprints again and rebuilds.
                        self._checked_at = -REFRESH_SECONDS
                        return self._matcher
            self._checked_at = time.monotonic()
        return self._matcher

    def _semantic(self, docs: list[FaqDoc]) -> SemanticMatcher:
        if self._encoder is None:
            self._encoder = MiniLMEncoder()
        return SemanticMatcher(docs, encoder=self._encoder)

    async def _apply(self, entry: FaqEntry | None, *, removed_id: int | None = None,
                     fingerprint: tuple[int, Any] | None = None) -> None:
        """Reflect one committed save or delete in the index (if it is built)."""
        self._applied += 1
        index = self._matcher
        if index is None:
            return
        if isinstance(index, SemanticMatcher):
            # Embedding the new phrasings takes milliseconds to seconds: off the loop.
            await asyncio.to_thread(self._edit, index, entry, removed_id)
        else:
            self._edit(index, entry, removed_id)
        if fingerprint is not None:
            self._fingerprint = fingerprint

    def _edit(self, index: Matcher | SemanticMatcher, entry: FaqEntry | None,
              removed_id: int | None) -> None:
        with self._index_lock:
            if entry is not None and entry.enabled:
                index.upsert(doc_for(entry))
            elif entry is not None:
                index.remove(str(entry.id))
            if removed_id is not None:
                index.remove(str(removed_id))

    async def match(self, rt: Runtime, text: str, *, limit: int = 3) -> MatchResult:
        """The matcher's ranking for `text`. The semantic re-ranker (~10-25 ms a message)
        runs in a worker thread, so the event loop serves other requests meanwhile; the
        default matcher (under a millisecond) runs in place."""
        index = await self.matcher(rt)
        if isinstance(index, SemanticMatcher):
            return await asyncio.to_thread(self._match_locked, index, text, limit)
        return index.match(text, limit=limit)

    def _match_locked(self, index: SemanticMatcher, text: str, limit: int) -> MatchResult:
        with self._index_lock:  # an edit changes its arrays in place
            return index.match(text, limit=limit)

    # --- entries ----------------------------------------------------------------------
    async def create(self, rt: Runtime, values: dict[str, Any], *,
                     resolve: Sequence[int] = ()) -> FaqEntry:
        """Store a new entry from validated `values` (and mark the unanswered questions
        `resolve` as covered by it, in the same transaction); `Conflict` on a taken
        external id."""
        try:
            async with rt.sessions() as session, session.begin():
                await self._check_external_id(session, values.get("external_id"), None)
                entry = await store.save_entry(
                    session, entry=FaqEntry(question=values["question"], answer=values["answer"]),
                    values=values)
                await store.resolve_unanswered(session, question_ids=resolve, entry_id=entry.id or 0)
                fingerprint = await store.fingerprint(session)
        except IntegrityError:
            raise Conflict(f"external_id {values.get('external_id')!r} is taken") from None
        await self._apply(entry, fingerprint=fingerprint)
        return entry

    async def update(self, rt: Runtime, entry_id: int, values: dict[str, Any], *,
                     resolve: Sequence[int] = ()) -> FaqEntry:
        """Change an entry's fields from validated `values` (and mark the unanswered
        questions `resolve` as covered by it); `NotFound`, `Conflict`."""
        try:
            async with rt.sessions() as session, session.begin():
                entry = await store.get_entry(session, entry_id=entry_id)
                if entry is None:
                    raise NotFound(f"FAQ entry {entry_id} does not exist")
                await self._check_external_id(session, values.get("external_id"), entry_id)
                await store.save_entry(session, entry=entry, values=values)
                await store.resolve_unanswered(session, question_ids=resolve, entry_id=entry_id)
                fingerprint = await store.fingerprint(session)
        except IntegrityError:
            raise Conflict(f"external_id {values.get('external_id')!r} is taken") from None
        await self._apply(entry, fingerprint=fingerprint)
        return entry

    async def delete(self, rt: Runtime, entry_id: int) -> None:
        """Delete an entry; `NotFound` if there is none."""
        async with rt.sessions() as session, session.begin():
            entry = await store.get_entry(session, entry_id=entry_id)
            if entry is None:
                raise NotFound(f"FAQ entry {entry_id} does not exist")
            await store.delete_entry(session, entry=entry)
            fingerprint = await store.fingerprint(session)
        await self._apply(None, removed_id=entry_id, fingerprint=fingerprint)

    async def upsert_external(self, rt: Runtime, values: dict[str, Any]) -> tuple[FaqEntry, bool]:
        """Create, or update the entry with the same external id; (entry, created)."""
        external_id = values.get("external_id")
        if external_id:
            async with rt.sessions() as session:
                existing = await store.entry_by_external_id(session, external_id=external_id)
            if existing is not None:
                return await self.update(rt, existing.id or 0, values), False
        return await self.create(rt, values), True

    async def save_many(
        self, rt: Runtime, batch: Sequence[tuple[str, dict[str, Any]]]
    ) -> tuple[int, int, list[str]]:
        """Upsert validated entries (an import) in one transaction: by external id when
        an item has one, else by identical question. Each item gets a savepoint, so one
        that the database refuses is reported as ``"<where>: ..."`` and the rest are
        kept. Returns (created, updated, problems); the index is rebuilt on next use."""
        created = updated = 0
        problems: list[str] = []
        async with rt.sessions() as session, session.begin():
            entries = await store.list_entries(session)
            by_external = {e.external_id: e for e in entries if e.external_id}
            by_question = {fold(e.question): e for e in entries if not e.external_id}
            for where, values in batch:
                external_id = values.get("external_id")
                existing = (by_external.get(external_id) if external_id
                            else by_question.get(fold(values["question"])))
                entry = existing or FaqEntry(question=values["question"], answer=values["answer"])
                try:
                    async with session.begin_nested():
                        await store.save_entry(session, entry=entry, values=values)
                except IntegrityError as exc:
                    problems.append(f"{where}: the database refused it ({exc.orig})")
                    continue
                if existing is not None:
                    updated += 1
                else:
                    created += 1
                if external_id:
                    by_external[external_id] = entry
                else:
                    by_question[fold(entry.question)] = entry
        self._matcher = None
        return created, updated, problems

    @staticmethod
    async def _check_external_id(session: Any, external_id: str | None, own_id: int | None) -> None:
        if not external_id:
            return
        other = await store.entry_by_external_id(session, external_id=external_id)
        if other is not None and other.id != own_id:
            raise Conflict(f"external_id {external_id!r} is already used by entry {other.id}",
                           extra={"reasons": [f"external_id: already used by entry {other.id}"]})

    # --- policy -----------------------------------------------------------------------
    async def evaluate(self, rt: Runtime, situation: Situation) -> tuple[Decision, FaqEntry | None]:
        """The policy's verdict on one message, and the matched entry when there is one."""
        early = screen(situation, self.policy)
        if early is not None:
            return early, None
        result = await self.match(rt, situation.text)
        entry = None
        # The entry's facts only matter for an answer: no read when the bot hands over.
        if result.entry_id is not None and confident(result, self.policy):
            async with rt.sessions() as session:
                entry = await store.get_entry(session, entry_id=int(result.entry_id))
        decision = judge(situation, result, facts_for(entry) if entry else None, self.policy)
        return decision, entry


def service_for(rt: Runtime) -> FaqService:
    """The process's `FaqService`: the one in ``rt.extras["faq"]``, else the one the FAQ
    responder holds, else a new one (no responder wired: the CLI, some tests)."""
    found = rt.extras.get("faq")
    if isinstance(found, FaqService):
        return found
    for responder in rt.responders:
        held = getattr(responder, "service", None)
        if isinstance(held, FaqService):
            rt.extras["faq"] = held
            return held
    service = FaqService(policy_from_settings(rt.settings))
    rt.extras["faq"] = service
    return service
