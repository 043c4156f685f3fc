"""operations: failed units the platform operator dismissed from the system page

Revision ID: 0014
Revises: 0011

A platform table (no tenant_id): the dismissed unit's own row names its tenant.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ops_dismissals',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('unit_id', sa.String(length=64), nullable=False),
    sa.Column('dismissed_by', sa.String(length=255), nullable=False),
    sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ops_dismissals')),
    sa.UniqueConstraint('kind', 'unit_id', name=op.f('uq_ops_dismissals_kind_unit_id'))
    )


def downgrade():
    op.drop_table('ops_dismissals')
