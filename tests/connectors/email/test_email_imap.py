"""The IMAP poller against a throwaway Dovecot: every mail taken exactly once, restarts
included."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.email import parse_message
from connectors.email.imap_poller import FileCursorStore, ImapCursor, ImapPoller, ImapSettings

DOVECOT = Path("/usr/sbin/dovecot")
USER, PASSWORD = "shop", "imap-secret"

pytestmark = pytest.mark.skipif(not DOVECOT.exists(), reason="Dovecot (/usr/sbin/dovecot) is not installed")

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@pytest.fixture
def dovecot(free_port: Callable[[], int]) -> Iterator[ImapSettings]:
    """A Dovecot with one passwd-file user and a maildir, on 127.0.0.1:<free port>."""
    # Not pytest's tmp_path: its parents are 0700 and Dovecot's unprivileged helpers
    # (dovenull, the mail uid) must traverse the directory.
    root = Path(tempfile.mkdtemp(prefix="inbox-dovecot-"))
    root.chmod(0o755)
    # Dovecot never delivers mail as uid 0; a root test run uses "nobody".
    owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    (root / "mail").mkdir()
    os.chown(root / "mail", owner.pw_uid, owner.pw_gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    port = free_port()
    (root / "dovecot.conf").write_text(
        CONFIG.format(root=root, uid=owner.pw_uid, gid=owner.pw_gid, port=port)
    )
    proc = subprocess.Popen(
        [str(DOVECOT), "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                    pytest.fail(f"dovecot did not start: {proc.stderr.read() if proc.stderr else b''!r} {log}")
                time.sleep(0.05)
        yield ImapSettings(host="127.0.0.1", port=port, ssl=False, username=USER, password=PASSWORD, timeout=5)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def _mail(n: int) -> bytes:
    return (
        f"From: Customer {n} <c{n}@example.com>\r\nTo: support@shop.example\r\n"
        f"Subject: Order {n}\r\nMessage-ID: <m{n}@example.com>\r\n\r\nWhere is order {n}?\r\n"
    ).encode()


def _append(settings: ImapSettings, n: int, *, seen: bool = False) -> None:
    imap = imaplib.IMAP4(settings.host, settings.port)
    imap.login(USER, PASSWORD)
    imap.append("INBOX", "(\\Seen)" if seen else None, None, _mail(n))
    imap.logout()


def _unseen(settings: ImapSettings) -> list[bytes]:
    imap = imaplib.IMAP4(settings.host, settings.port)
    imap.login(USER, PASSWORD)
    imap.select("INBOX", readonly=True)
    _, data = imap.uid("SEARCH", "UNSEEN")
    imap.logout()
    return list(data[0].split()) if data and isinstance(data[0], bytes) else []


class Pipeline:
    """Stands in for the core: records Message-IDs; can be told to fail."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.failing = False

    async def __call__(self, raw: bytes) -> None:
        if self.failing:
            raise RuntimeError("database is down")
        self.taken.append(parse_message(raw, our_addresses=()).provider_message_id)


def _poller(settings: ImapSettings, pipeline: Pipeline, store: FileCursorStore) -> ImapPoller:
    return ImapPoller(settings, on_message=pipeline, load_cursor=store.load, save_cursor=store.save, max_attempts=3)


async def test_each_mail_is_taken_exactly_once_across_restarts_and_failures(
    dovecot: ImapSettings, tmp_path: Path
) -> None:
    store = FileCursorStore(tmp_path / "cursor.json")
    pipeline = Pipeline()
    _append(dovecot, 0, seen=True)  # read by a person before we were set up: not ours
    _append(dovecot, 1)
    _append(dovecot, 2)

    assert await _poller(dovecot, pipeline, store).poll_once() == 2
    assert pipeline.taken == ["<m1@example.com>", "<m2@example.com>"]
    assert _unseen(dovecot) == []  # marked \Seen after the pipeline took them

    # A restart (a new poller, the same cursor store) takes nothing twice.
    assert await _poller(dovecot, pipeline, store).poll_once() == 0

    # New mail is taken even if a person opened it in the mailbox first.
    _append(dovecot, 3, seen=True)
    _append(dovecot, 4)
    # The pipeline is down: nothing is taken, nothing is marked, the cursor stays.
    pipeline.failing = True
    assert await _poller(dovecot, pipeline, store).poll_once() == 0
    assert len(_unseen(dovecot)) == 1
    pipeline.failing = False
    assert await _poller(dovecot, pipeline, store).poll_once() == 2
    assert await _poller(dovecot, pipeline, store).poll_once() == 0
    assert pipeline.taken == [f"<m{n}@example.com>" for n in (1, 2, 3, 4)]
    cursor = await store.load()
    assert cursor is not None and cursor.last_uid == 5


async def test_a_renumbered_folder_falls_back_to_unseen_mail(dovecot: ImapSettings, tmp_path: Path) -> None:
    store = FileCursorStore(tmp_path / "cursor.json")
    await store.save(ImapCursor(uidvalidity=1, last_uid=10_000))  # a different UIDVALIDITY
    _append(dovecot, 1, seen=True)
    _append(dovecot, 2)
    pipeline = Pipeline()
    assert await _poller(dovecot, pipeline, store).poll_once() == 1
    assert pipeline.taken == ["<m2@example.com>"]


async def test_a_poisonous_mail_is_skipped_after_max_attempts(dovecot: ImapSettings, tmp_path: Path) -> None:
    store = FileCursorStore(tmp_path / "cursor.json")
    pipeline = Pipeline()
    poller = _poller(dovecot, pipeline, store)
    _append(dovecot, 1)
    pipeline.failing = True
    for _ in range(3):
        assert await poller.poll_once() == 0
    pipeline.failing = False
    _append(dovecot, 2)
    assert await poller.poll_once() == 1
    assert pipeline.taken == ["<m2@example.com>"]
    assert len(_unseen(dovecot)) == 1  # the skipped one stays unread for a person to see


async def test_wrong_password_raises_from_poll_once(dovecot: ImapSettings, tmp_path: Path) -> None:
    store = FileCursorStore(tmp_path / "cursor.json")
    bad = ImapSettings(host=dovecot.host, port=dovecot.port, ssl=False, username=USER, password="nope", timeout=5)
    with pytest.raises(imaplib.IMAP4.error):
        await _poller(bad, Pipeline(), store).poll_once()
