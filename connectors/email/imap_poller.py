"""Poll an IMAP mailbox and hand each new mail to the pipeline exactly once.

`ImapPoller.poll_once()` promises:

- it logs in, selects the folder and reads UIDVALIDITY (RFC 3501 2.3.1.1);
- with a saved cursor for that UIDVALIDITY it takes every message with a UID above the
  cursor (seen or not: a person opening the mailbox must not hide mail from us);
  without one (first run, or the server renumbered the folder) it takes UNSEEN mail;
- each message is fetched with BODY.PEEK[] (reading does not mark it), handed to
  `on_message(raw)`, and only when that returned is the cursor saved and the message
  flagged \\Seen. A crash in between re-delivers the mail once; the pipeline is
  idempotent by Message-ID, so it is stored once;
- a message whose callback fails stops the batch (order kept) and is retried at the
  next poll; after `max_attempts` failures it is skipped (left unseen, logged), so one
  poisonous mail cannot block the mailbox.

imaplib runs in worker threads (`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["FileCursorStore", "ImapCursor", "ImapPoller", "ImapSettings"]

log = logging.getLogger(__name__)

OnMessage = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """The mailbox to poll; `ssl`: implicit TLS (port 993), else plain with STARTTLS
    when `starttls` (port 143)."""

    host: str
    username: str
    password: str
    port: int = 993
    ssl: bool = True
    starttls: bool = False
    folder: str = "INBOX"
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class ImapCursor:
    """How far we got: the folder's UIDVALIDITY and the last UID handed over."""

    uidvalidity: int
    last_uid: int


LoadCursor = Callable[[], Awaitable[ImapCursor | None]]
SaveCursor = Callable[[ImapCursor], Awaitable[None]]


class FileCursorStore:
    """A cursor kept in a small JSON file (written atomically); `load`/`save` fit ImapPoller."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    async def load(self) -> ImapCursor | None:
        def read() -> ImapCursor | None:
            try:
                data = json.loads(self.path.read_text("utf-8"))
                return ImapCursor(int(data["uidvalidity"]), int(data["last_uid"]))
            except (OSError, ValueError, KeyError, TypeError):
                return None

        return await asyncio.to_thread(read)

    async def save(self, cursor: ImapCursor) -> None:
        def write() -> None:
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text(json.dumps(asdict(cursor)), "utf-8")
            tmp.replace(self.path)

        await asyncio.to_thread(write)


class ImapPoller:
    """Moves new mail from one IMAP folder to `on_message` (see the module docstring)."""

    def __init__(
        self,
        settings: ImapSettings,
        *,
        on_message: OnMessage,
        load_cursor: LoadCursor,
        save_cursor: SaveCursor,
        interval: float = 60.0,
        max_attempts: int = 5,
        batch_size: int = 100,
    ) -> None:
        self.settings = settings
        self.on_message = on_message
        self.load_cursor = load_cursor
        self.save_cursor = save_cursor
        self.interval = interval
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self._failures: dict[tuple[int, int], int] = {}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll every `interval` seconds until `stop` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.poll_once()
            except Exception:  # a server outage must not end the poller
                log.exception("IMAP poll of %s failed; retrying in %.0fs", self.settings.host, self.interval)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass

    async def poll_once(self) -> int:
        """One pass over the folder; returns how many messages were handed over."""
        imap, uidvalidity = await asyncio.to_thread(self._open)
        handed = 0
        try:
            cursor = await self.load_cursor()
            if cursor is not None and cursor.uidvalidity == uidvalidity:
                last = cursor.last_uid
                criteria = f"UID {last + 1}:*"
            else:
                if cursor is not None:
                    log.warning("IMAP UIDVALIDITY of %s changed; taking unseen mail again", self.settings.folder)
                last, criteria = 0, "UNSEEN"
            uids = [uid for uid in await asyncio.to_thread(_search, imap, criteria) if uid > last]
            for uid in sorted(uids)[: self.batch_size]:
                raw = await asyncio.to_thread(_fetch, imap, uid)
                if raw is None:
                    continue  # expunged between SEARCH and FETCH
                try:
                    await self.on_message(raw)
                except Exception:
                    if self._give_up(uidvalidity, uid):
                        log.exception("IMAP message uid %s failed %s times; skipping it", uid, self.max_attempts)
                        await self.save_cursor(ImapCursor(uidvalidity, uid))
                        continue
                    log.exception("IMAP message uid %s not stored; will retry", uid)
                    break
                await self.save_cursor(ImapCursor(uidvalidity, uid))
                self._failures.pop((uidvalidity, uid), None)
                handed += 1
                await asyncio.to_thread(_mark_seen, imap, uid)
        finally:
            await asyncio.to_thread(_close, imap)
        return handed

    def _give_up(self, uidvalidity: int, uid: int) -> bool:
        key = (uidvalidity, uid)
        self._failures[key] = self._failures.get(key, 0) + 1
        return self._failures[key] >= self.max_attempts

    def _open(self) -> tuple[imaplib.IMAP4, int]:
        s = self.settings
        imap: imaplib.IMAP4
        if s.ssl:
            imap = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=ssl.create_default_context(), timeout=s.timeout)
        else:
            imap = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
            if s.starttls:
                imap.starttls(ssl.create_default_context())
        try:
            imap.login(s.username, s.password)
            status, _ = imap.select(_quote(s.folder))
            if status != "OK":
                raise imaplib.IMAP4.error(f"cannot select folder {s.folder!r}")
            _, data = imap.response("UIDVALIDITY")
            uidvalidity = int(data[0]) if data and data[0] else 0
        except Exception:
            _close(imap)
            raise
        return imap, uidvalidity


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _search(imap: imaplib.IMAP4, criteria: str) -> list[int]:
    status, data = imap.uid("SEARCH", criteria)
    if status != "OK":
        raise imaplib.IMAP4.error(f"UID SEARCH {criteria} failed: {data!r}")
    return [int(tok) for chunk in data if chunk for tok in chunk.split()]


_FETCH_UID = re.compile(rb"UID (\d+)")


def _fetch(imap: imaplib.IMAP4, uid: int) -> bytes | None:
    status, data = imap.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
    if status != "OK":
        raise imaplib.IMAP4.error(f"UID FETCH {uid} failed: {data!r}")
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            match = _FETCH_UID.search(item[0])
            if match is None or int(match.group(1)) == uid:
                return bytes(item[1])
    return None


def _mark_seen(imap: imaplib.IMAP4, uid: int) -> None:
    imap.uid("STORE", str(uid), "+FLAGS", "(\\Seen)")


def _close(imap: imaplib.IMAP4) -> None:
    try:
        if imap.state == "SELECTED":
            imap.close()
        imap.logout()
    except Exception:  # already gone: nothing to release
        pass
