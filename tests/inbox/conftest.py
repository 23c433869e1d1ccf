"""tests/inbox: the fast per-test database (see fast_db)."""

from tests.inbox.fast_db import database_url, sqlite_template  # noqa: F401
