"""people: invitations (single-use, expiring set-password links stored as hashes)

Revision ID: 0011
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa

from tenants.migration_ops import isolate_tenant_table, release_tenant_table

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'invitations',
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('send_count', sa.Integer(), nullable=False),
        sa.Column('invited_by_id', sa.Uuid(), nullable=True),
        sa.Column('invited_by_label', sa.String(length=254), nullable=False),
        sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('accepted_user_id', sa.Uuid(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('RESELLER', 'USER')", name=op.f('ck_invitations_role')),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                                name=op.f('fk_invitations_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'],
                                name=op.f('fk_invitations_invited_by_id_users'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['accepted_user_id'], ['users.id'],
                                name=op.f('fk_invitations_accepted_user_id_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_invitations')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_invitations_token_hash')),
    )
    op.create_index('ix_invitations_tenant_id', 'invitations', ['tenant_id'], unique=False)
    op.create_index('ix_invitations_tenant_email', 'invitations', ['tenant_id', 'email'],
                    unique=False)
    isolate_tenant_table('invitations')


def downgrade():
    release_tenant_table('invitations')
    op.drop_index('ix_invitations_tenant_email', table_name='invitations')
    op.drop_index('ix_invitations_tenant_id', table_name='invitations')
    op.drop_table('invitations')
