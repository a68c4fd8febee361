"""agreement signing ceremony

Agreements gain the ceremony's states and what it binds to; events, signatures and documents are new tables; the
vendor's party details get a table of their own. Existing agreements keep their meaning: ``active`` becomes
``executed`` (the agreement in force), ``ended`` becomes ``superseded`` when a newer agreement replaced it and
``terminated`` otherwise.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 07:45:40.043118
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dpa_vendor_profile',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('values', portal.db.JSONDocument(), nullable=False),
    sa.Column('updated_by', sa.String(length=400), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dpa_vendor_profile'))
    )
    op.create_table('agreement_documents',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('agreement_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreements.id'], name=op.f('fk_agreement_documents_agreement_id_agreements'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_agreement_documents_org_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreement_documents')),
    sa.UniqueConstraint('agreement_id', 'kind', name=op.f('uq_agreement_documents_agreement_id'))
    )
    with op.batch_alter_table('agreement_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreement_documents_agreement_id'), ['agreement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreement_documents_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreement_documents_sha256'), ['sha256'], unique=False)

    op.create_table('agreement_events',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('agreement_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=30), nullable=False),
    sa.Column('at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=400), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=300), nullable=False),
    sa.Column('auth_method', sa.String(length=30), nullable=False),
    sa.Column('data', portal.db.JSONDocument(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreements.id'], name=op.f('fk_agreement_events_agreement_id_agreements'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_agreement_events_org_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_agreement_events_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreement_events')),
    sa.UniqueConstraint('agreement_id', 'seq', name=op.f('uq_agreement_events_agreement_id'))
    )
    with op.batch_alter_table('agreement_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreement_events_agreement_id'), ['agreement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreement_events_org_id'), ['org_id'], unique=False)

    op.create_table('agreement_signatures',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('agreement_id', sa.Uuid(), nullable=False),
    sa.Column('party', sa.String(length=10), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('auth_method', sa.String(length=30), nullable=False),
    sa.Column('level', sa.String(length=3), nullable=False),
    sa.Column('signed_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('document_sha256', sa.String(length=64), nullable=False),
    sa.Column('consent_text', sa.Text(), nullable=False),
    sa.Column('authority_statement', sa.Text(), nullable=False),
    sa.Column('button_label', sa.String(length=300), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('user_agent', sa.String(length=300), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreements.id'], name=op.f('fk_agreement_signatures_agreement_id_agreements'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_agreement_signatures_org_id_organisations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_agreement_signatures_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreement_signatures')),
    sa.UniqueConstraint('agreement_id', 'party', name=op.f('uq_agreement_signatures_agreement_id'))
    )
    with op.batch_alter_table('agreement_signatures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreement_signatures_agreement_id'), ['agreement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agreement_signatures_org_id'), ['org_id'], unique=False)

    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.drop_index('uq_agreements_one_active', postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))
        batch_op.add_column(sa.Column('breach_target_hours', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('template_version_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('details', portal.db.JSONDocument(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('signatory_user_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('document_docx', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('document_sha256', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('bound_to', portal.db.JSONDocument(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('document_context', portal.db.JSONDocument(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('sent_at', portal.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('executed_at', portal.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('decline_reason', sa.Text(), nullable=False, server_default=''))
        batch_op.alter_column('signed_on',
               existing_type=sa.DATE(),
               nullable=True)
        batch_op.alter_column('status',
               existing_type=sa.VARCHAR(length=20),
               type_=sa.String(length=30),
               existing_nullable=False)

    op.execute("UPDATE agreements SET status = 'executed' WHERE status = 'active'")
    op.execute("UPDATE agreements SET status = 'superseded' WHERE status = 'ended' AND end_reason LIKE 'superseded by %'")
    op.execute("UPDATE agreements SET status = 'terminated' WHERE status = 'ended'")

    with op.batch_alter_table('agreements', schema=None) as batch_op:
        # The defaults were for the rows that already existed; the models give every new row its values.
        batch_op.alter_column('details', server_default=None)
        batch_op.alter_column('document_sha256', server_default=None)
        batch_op.alter_column('bound_to', server_default=None)
        batch_op.alter_column('document_context', server_default=None)
        batch_op.alter_column('decline_reason', server_default=None)
        batch_op.create_index(batch_op.f('ix_agreements_template_version_id'), ['template_version_id'], unique=False)
        batch_op.create_index('uq_agreements_one_executed', ['org_id'], unique=True, postgresql_where=sa.text("status = 'executed'"), sqlite_where=sa.text("status = 'executed'"))
        batch_op.create_index('uq_agreements_one_open', ['org_id'], unique=True, postgresql_where=sa.text("status IN ('draft', 'awaiting_signature', 'awaiting_countersignature')"), sqlite_where=sa.text("status IN ('draft', 'awaiting_signature', 'awaiting_countersignature')"))
        batch_op.create_foreign_key(batch_op.f('fk_agreements_template_version_id_dpa_template_versions'), 'dpa_template_versions', ['template_version_id'], ['id'], ondelete='RESTRICT')
        batch_op.create_foreign_key(batch_op.f('fk_agreements_signatory_user_id_users'), 'users', ['signatory_user_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    # Agreements signed in the portal have no place in the older schema; those recorded by vendor staff keep theirs.
    op.drop_table('agreement_signatures')
    op.drop_table('agreement_events')
    op.drop_table('agreement_documents')
    op.execute("DELETE FROM agreements WHERE template_version_id IS NOT NULL OR signed_on IS NULL")
    op.execute("UPDATE agreements SET status = 'active' WHERE status = 'executed'")
    op.execute("UPDATE agreements SET status = 'ended' WHERE status <> 'active'")
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_agreements_signatory_user_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_agreements_template_version_id_dpa_template_versions'), type_='foreignkey')
        batch_op.drop_index('uq_agreements_one_open', postgresql_where=sa.text("status IN ('draft', 'awaiting_signature', 'awaiting_countersignature')"), sqlite_where=sa.text("status IN ('draft', 'awaiting_signature', 'awaiting_countersignature')"))
        batch_op.drop_index('uq_agreements_one_executed', postgresql_where=sa.text("status = 'executed'"), sqlite_where=sa.text("status = 'executed'"))
        batch_op.drop_index(batch_op.f('ix_agreements_template_version_id'))
        batch_op.create_index('uq_agreements_one_active', ['org_id'], unique=True, postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))
        batch_op.alter_column('status',
               existing_type=sa.String(length=30),
               type_=sa.VARCHAR(length=20),
               existing_nullable=False)
        batch_op.alter_column('signed_on',
               existing_type=sa.DATE(),
               nullable=False)
        batch_op.drop_column('decline_reason')
        batch_op.drop_column('executed_at')
        batch_op.drop_column('sent_at')
        batch_op.drop_column('bound_to')
        batch_op.drop_column('document_context')
        batch_op.drop_column('document_sha256')
        batch_op.drop_column('document_docx')
        batch_op.drop_column('signatory_user_id')
        batch_op.drop_column('details')
        batch_op.drop_column('template_version_id')
        batch_op.drop_column('breach_target_hours')

    op.drop_table('dpa_vendor_profile')
