"""Browser fixtures: Debian's Chromium driven by Python playwright (never downloaded).

Under CI (`CI=true`) a missing Chromium fails the run; elsewhere the browser tests skip
with the command that installs it.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.required import missing

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and no background calls home: this machine's network is closed.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium, closed after the test."""
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        missing("Debian chromium is not installed (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as p:
        instance = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield instance
        finally:
            await instance.close()
