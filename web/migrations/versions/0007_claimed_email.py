"""contact.claimed_email: an email a web-chat visitor typed, kept apart from identities

An unsigned `identify` frame used to add the typed address as an email identity, and
join the visitor to whichever contact already had it: anyone could type a customer's
address in the widget and have the FAQ bot answer with that customer's latest order.
The typed address is now only a claim on the visitor's own contact (late replies still
reach it); a signed one (INBOX_WEBCHAT_IDENTITY_SECRET) is an identity as before.

Revision ID: 0007_claimed_email
Revises: 0006_deferred_message_search
Create Date: 2026-12-08 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007_claimed_email'
down_revision = '0006_deferred_message_search'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch copy: the table's search triggers stay as they are).
    op.add_column('contact', sa.Column('claimed_email',
                                       sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE contact DROP COLUMN claimed_email")  # SQLite 3.35+, PostgreSQL
