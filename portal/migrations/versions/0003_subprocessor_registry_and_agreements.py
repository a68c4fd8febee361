"""subprocessor registry and agreements

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:10:24.473691
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('subprocessor_drafts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('entry_id', sa.Uuid(), nullable=False),
    sa.Column('replaces_entry_id', sa.Uuid(), nullable=True),
    sa.Column('data', portal.db.JSONDocument(), nullable=False),
    sa.Column('created_by', sa.String(length=400), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subprocessor_drafts')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_subprocessor_drafts_entry_id'))
    )
    op.create_table('subprocessor_versions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('announced_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('effective_date', sa.Date(), nullable=False),
    sa.Column('notice_days', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('document', portal.db.JSONDocument(), nullable=False),
    sa.Column('changes', portal.db.JSONDocument(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('published_by', sa.String(length=400), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subprocessor_versions')),
    sa.UniqueConstraint('number', name=op.f('uq_subprocessor_versions_number'))
    )
    with op.batch_alter_table('subprocessor_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subprocessor_versions_effective_date'), ['effective_date'], unique=False)

    op.create_table('agreements',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('signed_on', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('subprocessor_authorisation', sa.String(length=20), nullable=False),
    sa.Column('notice_days', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('recorded_by', sa.String(length=400), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=500), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_agreements_org_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreements'))
    )
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreements_org_id'), ['org_id'], unique=False)
        batch_op.create_index('uq_agreements_one_active', ['org_id'], unique=True, postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))

    op.create_table('subprocessor_authorisations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('agreement_id', sa.Uuid(), nullable=True),
    sa.Column('entry_id', sa.Uuid(), nullable=False),
    sa.Column('entry_name', sa.String(length=200), nullable=False),
    sa.Column('change_kind', sa.String(length=20), nullable=False),
    sa.Column('authorisation', sa.String(length=20), nullable=False),
    sa.Column('notice_days', sa.Integer(), nullable=False),
    sa.Column('notified_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deadline', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=30), nullable=False),
    sa.Column('decided_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=400), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreements.id'], name=op.f('fk_subprocessor_authorisations_agreement_id_agreements'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_subprocessor_authorisations_org_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['subprocessor_versions.id'], name=op.f('fk_subprocessor_authorisations_version_id_subprocessor_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subprocessor_authorisations')),
    sa.UniqueConstraint('org_id', 'version_id', 'entry_id', name=op.f('uq_subprocessor_authorisations_org_id'))
    )
    with op.batch_alter_table('subprocessor_authorisations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subprocessor_authorisations_deadline'), ['deadline'], unique=False)
        batch_op.create_index(batch_op.f('ix_subprocessor_authorisations_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subprocessor_authorisations_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_subprocessor_authorisations_version_id'), ['version_id'], unique=False)

    op.create_table('subprocessor_objections',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('authorisation_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('lodged_by', sa.String(length=400), nullable=False),
    sa.Column('lodged_by_email', sa.String(length=320), nullable=False),
    sa.Column('lodged_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolution', sa.String(length=20), nullable=True),
    sa.Column('resolution_note', sa.Text(), nullable=False),
    sa.Column('resolved_by', sa.String(length=400), nullable=False),
    sa.Column('resolved_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['authorisation_id'], ['subprocessor_authorisations.id'], name=op.f('fk_subprocessor_objections_authorisation_id_subprocessor_authorisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_subprocessor_objections_org_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subprocessor_objections'))
    )
    with op.batch_alter_table('subprocessor_objections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subprocessor_objections_authorisation_id'), ['authorisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subprocessor_objections_is_open'), ['is_open'], unique=False)
        batch_op.create_index(batch_op.f('ix_subprocessor_objections_org_id'), ['org_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('subprocessor_objections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subprocessor_objections_org_id'))
        batch_op.drop_index(batch_op.f('ix_subprocessor_objections_is_open'))
        batch_op.drop_index(batch_op.f('ix_subprocessor_objections_authorisation_id'))

    op.drop_table('subprocessor_objections')
    with op.batch_alter_table('subprocessor_authorisations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subprocessor_authorisations_version_id'))
        batch_op.drop_index(batch_op.f('ix_subprocessor_authorisations_state'))
        batch_op.drop_index(batch_op.f('ix_subprocessor_authorisations_org_id'))
        batch_op.drop_index(batch_op.f('ix_subprocessor_authorisations_deadline'))

    op.drop_table('subprocessor_authorisations')
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.drop_index('uq_agreements_one_active', postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))
        batch_op.drop_index(batch_op.f('ix_agreements_org_id'))

    op.drop_table('agreements')
    with op.batch_alter_table('subprocessor_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subprocessor_versions_effective_date'))

    op.drop_table('subprocessor_versions')
    op.drop_table('subprocessor_drafts')
