"""Fixtures for the email connector tests: the upstream .eml corpus and free ports."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("INBOX_SHARED_DIR", Path(__file__).resolve().parents[4] / "shared"))
EMAIL_FIXTURES = SHARED / "fixtures" / "email"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Returns a function giving a TCP port on 127.0.0.1 that nothing listens on now."""
    return _free_port


@pytest.fixture
def fixtures_dir() -> Path:
    """The directory of upstream .eml fixtures (shared/fixtures/email)."""
    return EMAIL_FIXTURES


@pytest.fixture
def eml() -> Callable[[str], bytes]:
    """Read one fixture message by file name (with or without .eml)."""

    def read(name: str) -> bytes:
        path = EMAIL_FIXTURES / (name if name.endswith(".eml") else f"{name}.eml")
        return path.read_bytes()

    return read
