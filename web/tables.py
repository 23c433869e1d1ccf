"""Every table of the product, imported in one place (for migrations and create_all).

The composition root knows all packages; the core's tables come from `inbox.models`,
and the FAQ and order tables from their packages as they are added.
"""

from __future__ import annotations

from sqlmodel import SQLModel

import faq.store  # noqa: F401
import inbox.models  # noqa: F401
import inbox.orders  # noqa: F401
from inbox import canned, merge  # noqa: F401  (canned_response, contact_merge)

metadata = SQLModel.metadata
