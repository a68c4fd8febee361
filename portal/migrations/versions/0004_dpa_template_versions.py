"""dpa template versions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 06:19:56.439141
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dpa_template_versions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('docx', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('placeholders', portal.db.JSONDocument(), nullable=False),
    sa.Column('changelog', sa.Text(), nullable=False),
    sa.Column('uploaded_by', sa.String(length=400), nullable=False),
    sa.Column('uploaded_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=400), nullable=False),
    sa.Column('published_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dpa_template_versions')),
    sa.UniqueConstraint('number', name=op.f('uq_dpa_template_versions_number'))
    )


def downgrade() -> None:
    op.drop_table('dpa_template_versions')
