"""licensing: remember which expiries were announced (license.expired)

Revision ID: 0008
Revises: 0007

The periodic expiry scan emits license.expired once per expiry and marks the row; the index
on expires_at keeps the scan cheap however many licenses there are.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTERs, no batch mode: recreating the table on SQLite would drop its
    # tenant-guard triggers.
    op.add_column('licenses', sa.Column('expiry_announced_at', sa.DateTime(timezone=True),
                                        nullable=True))
    op.create_index('ix_licenses_expires_at', 'licenses', ['expires_at'], unique=False)


def downgrade():
    op.drop_index('ix_licenses_expires_at', table_name='licenses')
    op.drop_column('licenses', 'expiry_announced_at')
