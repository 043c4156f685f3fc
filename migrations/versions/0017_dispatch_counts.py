"""durable work, bounded: dispatch counts; Idempotency-Key on bulk license issues

Revision ID: 0017
Revises: 0015

A unit whose RQ job keeps getting lost (queued, or retrying and due, with no live job) was
dispatched again by every recovery sweep, without bound, because only a worker's claim counts
an attempt. ``dispatches`` counts the sweep's re-dispatches since a worker last claimed the
unit; past ALBEDO_MAX_DISPATCHES the unit ends ``failed`` with ``dispatch_attempts_exhausted``
(jobs/durable.py).

``license_bulk_issues`` takes an Idempotency-Key (app/api/idempotency.py): the key, the
request's fingerprint, and a unique index per caller (an index, not a constraint: SQLite adds
it without copying the table).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0015'
branch_labels = None
depends_on = None

TABLES = ("agent_executions", "emails", "webhook_deliveries", "license_bulk_issues")


def upgrade():
    for table in TABLES:
        # add_column, not batch mode: SQLite adds a column in place (a batch copy of the
        # table would drop its tenant_id triggers).
        op.add_column(table, sa.Column('dispatches', sa.Integer(), nullable=False,
                                       server_default='0'))
    op.add_column('license_bulk_issues', sa.Column('idempotency_key', sa.String(length=255),
                                                   nullable=True))
    op.add_column('license_bulk_issues', sa.Column('idempotency_fingerprint',
                                                   sa.String(length=64), nullable=True))
    op.create_index('uq_license_bulk_issues_idempotency', 'license_bulk_issues',
                    ['tenant_id', 'created_by_id', 'idempotency_key'], unique=True)


def downgrade():
    op.drop_index('uq_license_bulk_issues_idempotency', table_name='license_bulk_issues')
    op.drop_column('license_bulk_issues', 'idempotency_fingerprint')
    op.drop_column('license_bulk_issues', 'idempotency_key')
    for table in TABLES:
        op.drop_column(table, 'dispatches')
