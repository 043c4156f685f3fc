"""durable work: automatic credit top-ups get a row of their own

Revision ID: 0021
Revises: 0017

An automatic top-up was only an RQ job: lost with Redis, it was never dispatched again, and
a declined card's outcome lived only in RQ's result. ``billing_auto_topups`` is its unit of
durable work (state, attempts, dispatches, lease or next attempt, final reason), written in
the transaction of the charge that crossed the threshold and recovered by the sweep
(jobs/durable.py). At most one is open per account (a partial unique index).
"""
from alembic import op
import sqlalchemy as sa

from tenants.migration_ops import isolate_tenant_table, release_tenant_table


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0017'
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('queued', 'running')")


def upgrade():
    op.create_table('billing_auto_topups',
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('balance_micro', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatches', sa.Integer(), server_default='0', nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')",
                       name=op.f('ck_billing_auto_topups_status')),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_billing_auto_topups_amount')),
    sa.ForeignKeyConstraint(['account_id'], ['billing_customer_accounts.id'],
                            name=op.f('fk_billing_auto_topups_account_id_billing_customer_accounts'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'],
                            name=op.f('fk_billing_auto_topups_tenant_id_tenants'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                            name=op.f('fk_billing_auto_topups_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_auto_topups'))
    )
    with op.batch_alter_table('billing_auto_topups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_billing_auto_topups_tenant_id'), ['tenant_id'],
                              unique=False)
        batch_op.create_index('ix_billing_auto_topups_status', ['status'], unique=False)
        batch_op.create_index('uq_billing_auto_topups_open', ['account_id'], unique=True,
                              sqlite_where=OPEN, postgresql_where=OPEN)
    isolate_tenant_table('billing_auto_topups')


def downgrade():
    release_tenant_table('billing_auto_topups')
    op.drop_table('billing_auto_topups')
