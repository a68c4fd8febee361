"""ai training instructions

Each client's documented instructions switching AI training on its data on or off.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 09:34:16.421781
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ai_training_instructions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data_class', sa.String(length=40), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('given_by', sa.String(length=400), nullable=False),
    sa.Column('given_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('commitments_version', sa.Integer(), nullable=True),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_ai_training_instructions_org_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_training_instructions')),
    sa.UniqueConstraint('org_id', 'seq', name=op.f('uq_ai_training_instructions_org_id'))
    )
    with op.batch_alter_table('ai_training_instructions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ai_training_instructions_org_id'), ['org_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ai_training_instructions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ai_training_instructions_org_id'))

    op.drop_table('ai_training_instructions')
