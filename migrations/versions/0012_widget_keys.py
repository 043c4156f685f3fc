"""widget: publishable widget keys, visitors' conversations, executions run with a key

Revision ID: 0012
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

from tenants.migration_ops import isolate_tenant_table, release_tenant_table


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None

TENANT_TABLES = ("widget_keys", "widget_conversations", "widget_executions")


def _tenant_columns(table):
    return [
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('tenant_id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                                name=op.f(f'fk_{table}_tenant_id_tenants'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{table}')),
    ]


def upgrade():
    op.create_table('widget_keys',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('agent_id', sa.Uuid(), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('allowed_origins', sa.JSON(), nullable=False),
    sa.Column('appearance', sa.JSON(), nullable=False),
    sa.Column('monthly_cap', sa.Integer(), nullable=True),
    sa.Column('requires_license', sa.Boolean(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    *_tenant_columns('widget_keys'),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'],
                            name=op.f('fk_widget_keys_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'],
                            name=op.f('fk_widget_keys_owner_id_users'), ondelete='CASCADE'),
    sa.UniqueConstraint('key', name=op.f('uq_widget_keys_key')),
    )
    op.create_index(op.f('ix_widget_keys_tenant_id'), 'widget_keys', ['tenant_id'])
    op.create_index(op.f('ix_widget_keys_agent_id'), 'widget_keys', ['agent_id'])
    op.create_index(op.f('ix_widget_keys_owner_id'), 'widget_keys', ['owner_id'])

    op.create_table('widget_conversations',
    sa.Column('widget_key_id', sa.Uuid(), nullable=False),
    sa.Column('visitor_id', sa.String(length=64), nullable=False),
    sa.Column('conversation_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    *_tenant_columns('widget_conversations'),
    sa.ForeignKeyConstraint(['widget_key_id'], ['widget_keys.id'],
                            name=op.f('fk_widget_conversations_widget_key_id_widget_keys'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['agent_conversations.id'],
                            name=op.f('fk_widget_conversations_conversation_id_agent_conversations'),
                            ondelete='CASCADE'),
    sa.UniqueConstraint('widget_key_id', 'visitor_id',
                        name=op.f('uq_widget_conversations_widget_key_id_visitor_id')),
    )
    op.create_index(op.f('ix_widget_conversations_tenant_id'), 'widget_conversations',
                    ['tenant_id'])

    op.create_table('widget_executions',
    sa.Column('execution_id', sa.Uuid(), nullable=False),
    sa.Column('widget_key_id', sa.Uuid(), nullable=False),
    sa.Column('visitor_id', sa.String(length=64), nullable=False),
    sa.Column('origin', sa.String(length=255), nullable=True),
    sa.Column('license_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    *_tenant_columns('widget_executions'),
    sa.ForeignKeyConstraint(['execution_id'], ['agent_executions.id'],
                            name=op.f('fk_widget_executions_execution_id_agent_executions'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['widget_key_id'], ['widget_keys.id'],
                            name=op.f('fk_widget_executions_widget_key_id_widget_keys'),
                            ondelete='CASCADE'),
    sa.UniqueConstraint('execution_id', name=op.f('uq_widget_executions_execution_id')),
    )
    op.create_index(op.f('ix_widget_executions_tenant_id'), 'widget_executions', ['tenant_id'])
    op.create_index(op.f('ix_widget_executions_widget_key_id'), 'widget_executions',
                    ['widget_key_id'])

    for table in TENANT_TABLES:
        isolate_tenant_table(table)


def downgrade():
    for table in reversed(TENANT_TABLES):
        release_tenant_table(table)
        op.drop_table(table)
