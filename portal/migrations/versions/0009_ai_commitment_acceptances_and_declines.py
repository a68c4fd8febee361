"""ai commitment acceptances and declines

Each client admin's acceptance, or refusal with its reason, of a commitments version that widens what applies to
the client.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 10:46:39.541672
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ai_commitment_acceptances',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('widening', portal.db.JSONDocument(), nullable=False),
    sa.Column('statement', sa.Text(), nullable=False),
    sa.Column('accepted_by', sa.String(length=400), nullable=False),
    sa.Column('accepted_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_ai_commitment_acceptances_org_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['ai_commitment_versions.id'], name=op.f('fk_ai_commitment_acceptances_version_id_ai_commitment_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_commitment_acceptances')),
    sa.UniqueConstraint('org_id', 'version_id', name=op.f('uq_ai_commitment_acceptances_org_id'))
    )
    with op.batch_alter_table('ai_commitment_acceptances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ai_commitment_acceptances_org_id'), ['org_id'], unique=False)

    op.create_table('ai_commitment_declines',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('declined_by', sa.String(length=400), nullable=False),
    sa.Column('declined_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_ai_commitment_declines_org_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['ai_commitment_versions.id'], name=op.f('fk_ai_commitment_declines_version_id_ai_commitment_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_commitment_declines')),
    sa.UniqueConstraint('org_id', 'version_id', name=op.f('uq_ai_commitment_declines_org_id'))
    )
    with op.batch_alter_table('ai_commitment_declines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ai_commitment_declines_org_id'), ['org_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ai_commitment_declines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ai_commitment_declines_org_id'))

    op.drop_table('ai_commitment_declines')
    with op.batch_alter_table('ai_commitment_acceptances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ai_commitment_acceptances_org_id'))

    op.drop_table('ai_commitment_acceptances')
