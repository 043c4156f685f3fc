"""branding: uploaded logo and favicon (brand_assets) and the tenant's favicon URL

Revision ID: 0010
Revises: 0009

Images live in the database (one row per tenant and kind), served at a content-hash URL;
brand_assets is tenant-scoped, so it gets row-level security like every tenant table.
"""
from alembic import op
import sqlalchemy as sa

from tenants.migration_ops import isolate_tenant_table, release_tenant_table

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER, no batch mode: recreating tenants on SQLite would drop its triggers.
    op.add_column('tenants', sa.Column('favicon_url', sa.String(length=500), nullable=True))
    op.create_table('brand_assets',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_brand_assets_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_brand_assets')),
    sa.UniqueConstraint('tenant_id', 'kind', name='uq_brand_assets_kind'),
    )
    op.create_index(op.f('ix_brand_assets_tenant_id'), 'brand_assets', ['tenant_id'], unique=False)
    isolate_tenant_table('brand_assets')


def downgrade():
    release_tenant_table('brand_assets')
    op.drop_index(op.f('ix_brand_assets_tenant_id'), table_name='brand_assets')
    op.drop_table('brand_assets')
    op.drop_column('tenants', 'favicon_url')
