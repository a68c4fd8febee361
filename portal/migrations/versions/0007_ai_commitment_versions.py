"""ai commitment versions

The ledger of AI data-use commitments: drafts and published, hash-chained versions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:15:37.526177
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ai_commitment_versions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('document', portal.db.JSONDocument(), nullable=False),
    sa.Column('effective_date', sa.Date(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('changes', portal.db.JSONDocument(), nullable=False),
    sa.Column('expanding', sa.Boolean(), nullable=False),
    sa.Column('expanding_reasons', portal.db.JSONDocument(), nullable=False),
    sa.Column('previous_sha256', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=400), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=400), nullable=False),
    sa.Column('published_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_commitment_versions')),
    sa.UniqueConstraint('number', name=op.f('uq_ai_commitment_versions_number'))
    )


def downgrade() -> None:
    op.drop_table('ai_commitment_versions')
