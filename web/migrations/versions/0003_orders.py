"""shop orders

Revision ID: 0003_orders
Revises: 0002_faq
Create Date: 2026-11-23 19:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import inbox.db


revision = '0003_orders'
down_revision = '0002_faq'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shop_order',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('placed_at', inbox.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('financial_status', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('fulfillment_status', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
    sa.Column('total', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('items', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('tracking_number', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('tracking_url', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('customer_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('customer_email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('customer_phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('created_at', inbox.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', inbox.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('external_id')
    )
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.create_index('ix_shop_order_placed', ['placed_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shop_order_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shop_order_customer_email'), ['customer_email'], unique=False)
        batch_op.create_index(batch_op.f('ix_shop_order_customer_phone'), ['customer_phone'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('shop_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shop_order_customer_phone'))
        batch_op.drop_index(batch_op.f('ix_shop_order_customer_email'))
        batch_op.drop_index(batch_op.f('ix_shop_order_contact_id'))
        batch_op.drop_index('ix_shop_order_placed')

    op.drop_table('shop_order')
