"""incident register and breach notices

Incidents (vendor-wide), the clients each affects, and the breach notices sent to each of them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 08:39:48.698691
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('incidents',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('aware_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('detected_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('occurred_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('natures', portal.db.JSONDocument(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('subprocessor_name', sa.String(length=200), nullable=False),
    sa.Column('subprocessor_notified_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('contact_point', sa.String(length=500), nullable=False),
    sa.Column('internal_notes', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('closure', sa.String(length=30), nullable=True),
    sa.Column('closure_rationale', sa.Text(), nullable=False),
    sa.Column('closed_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=400), nullable=False),
    sa.Column('created_by', sa.String(length=400), nullable=False),
    sa.Column('created_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents')),
    sa.UniqueConstraint('reference', name=op.f('uq_incidents_reference'))
    )
    op.create_table('incident_clients',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('added_by', sa.String(length=400), nullable=False),
    sa.Column('added_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_clients_incident_id_incidents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_incident_clients_org_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_clients')),
    sa.UniqueConstraint('incident_id', 'org_id', name=op.f('uq_incident_clients_incident_id'))
    )
    with op.batch_alter_table('incident_clients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_clients_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_clients_org_id'), ['org_id'], unique=False)

    op.create_table('breach_notices',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('incident_id', sa.Uuid(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('phase', sa.String(length=10), nullable=False),
    sa.Column('content', portal.db.JSONDocument(), nullable=False),
    sa.Column('changes', portal.db.JSONDocument(), nullable=False),
    sa.Column('notified_at', portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('notice_id', sa.Uuid(), nullable=True),
    sa.Column('acknowledged_at', portal.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=400), nullable=False),
    sa.Column('created_by', sa.String(length=400), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_breach_notices_incident_id_incidents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['notice_id'], ['notices.id'], name=op.f('fk_breach_notices_notice_id_notices'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_breach_notices_org_id_organisations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_breach_notices')),
    sa.UniqueConstraint('incident_id', 'org_id', 'seq', name=op.f('uq_breach_notices_incident_id'))
    )
    with op.batch_alter_table('breach_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_breach_notices_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_breach_notices_org_id'), ['org_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('breach_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_breach_notices_org_id'))
        batch_op.drop_index(batch_op.f('ix_breach_notices_incident_id'))

    op.drop_table('breach_notices')
    with op.batch_alter_table('incident_clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_clients_org_id'))
        batch_op.drop_index(batch_op.f('ix_incident_clients_incident_id'))

    op.drop_table('incident_clients')
    op.drop_table('incidents')
