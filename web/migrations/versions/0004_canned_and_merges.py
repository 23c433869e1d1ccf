"""canned responses and contact merges

Revision ID: 0004_canned_merges
Revises: 0003_orders
Create Date: 2026-11-23 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.db


revision = '0004_canned_merges'
down_revision = '0003_orders'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('canned_response',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shortcut', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', inbox.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', inbox.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('shortcut')
    )
    op.create_table('contact_merge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('identity_ids', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('conversation_ids', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('took_name', sa.Boolean(), nullable=False),
    sa.Column('merged_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('created_at', inbox.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('undone_at', inbox.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('undone_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.ForeignKeyConstraint(['source_id'], ['contact.id'], ),
    sa.ForeignKeyConstraint(['target_id'], ['contact.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('contact_merge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_merge_source_id'), ['source_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_merge_target_id'), ['target_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contact_merge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_merge_target_id'))
        batch_op.drop_index(batch_op.f('ix_contact_merge_source_id'))

    op.drop_table('contact_merge')
    op.drop_table('canned_response')
