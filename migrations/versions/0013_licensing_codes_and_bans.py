"""licensing: entitlements on policies and licenses, check-ins, heartbeat start, cores,
banned customers

Revision ID: 0013
Revises: 0012

Columns only, on tables that already have row-level security and the tenant triggers.
Plain ALTERs, no batch mode: recreating a table on SQLite would drop its tenant-guard
triggers.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('license_policies', sa.Column('entitlements', sa.JSON(), nullable=False,
                                                server_default=sa.text("'[]'")))
    op.add_column('license_policies', sa.Column('require_heartbeat', sa.Boolean(),
                                                nullable=False, server_default=sa.false()))
    op.add_column('license_policies', sa.Column('check_in_interval_seconds', sa.Integer(),
                                                nullable=True))
    op.add_column('license_policies', sa.Column('max_cores', sa.Integer(), nullable=True))
    op.add_column('licenses', sa.Column('entitlements', sa.JSON(), nullable=False,
                                        server_default=sa.text("'[]'")))
    op.add_column('licenses', sa.Column('last_check_in_at', sa.DateTime(timezone=True),
                                        nullable=True))
    op.add_column('license_machines', sa.Column('first_heartbeat_at',
                                                sa.DateTime(timezone=True), nullable=True))
    op.add_column('license_machines', sa.Column('cores', sa.Integer(), nullable=True))
    op.add_column('users', sa.Column('banned_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column('users', 'banned_at')
    op.drop_column('license_machines', 'cores')
    op.drop_column('license_machines', 'first_heartbeat_at')
    op.drop_column('licenses', 'last_check_in_at')
    op.drop_column('licenses', 'entitlements')
    op.drop_column('license_policies', 'max_cores')
    op.drop_column('license_policies', 'check_in_interval_seconds')
    op.drop_column('license_policies', 'require_heartbeat')
    op.drop_column('license_policies', 'entitlements')
