"""What a test needs from the machine (a server, a browser): missing, it skips on a
developer's machine and fails under CI (`CI=true`, set by `.ci/run`), which must run
every test."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str) -> NoReturn:
    """Stop the test because `what` is missing: a failure on CI, a skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI must provide it)")
    pytest.skip(what)
