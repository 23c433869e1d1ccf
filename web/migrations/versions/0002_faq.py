"""faq entries and unanswered questions

Revision ID: 0002_faq
Revises: 8eeaed1507f8
Create Date: 2026-11-23 19:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.db


revision = '0002_faq'
down_revision = '8eeaed1507f8'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('faq_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('question', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('alternates', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('answer_fallback', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tags', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('channels', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', inbox.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', inbox.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('auto_answers', sa.Integer(), nullable=False),
    sa.Column('handovers_after_answer', sa.Integer(), nullable=False),
    sa.Column('last_used_at', inbox.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('external_id')
    )
    op.create_table('faq_unanswered',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('created_at', inbox.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_entry_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversation.id'], ),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], ),
    sa.ForeignKeyConstraint(['resolved_entry_id'], ['faq_entry.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('faq_unanswered', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_faq_unanswered_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_faq_unanswered_resolved_entry_id'), ['resolved_entry_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('faq_unanswered', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_faq_unanswered_resolved_entry_id'))
        batch_op.drop_index(batch_op.f('ix_faq_unanswered_message_id'))
    op.drop_table('faq_unanswered')
    op.drop_table('faq_entry')
