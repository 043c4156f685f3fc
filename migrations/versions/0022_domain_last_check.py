"""custom domains keep their last DNS check: when, and what kept them from verifying

Revision ID: 0022
Revises: 0021

A pending domain's failed check was said only at the moment of the check; the background
re-check (every 15 minutes in its first week) left no trace. ``last_checked_at`` and
``last_check_code`` (``no_record``, ``wrong_value``, ``timeout``, ``lookup_failed``; NULL
once it verified) are shown on the reseller's and the operator's pages and in the domains
API. The domains table already has its row-level security (0009).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

CODES = "last_check_code IN ('no_record', 'wrong_value', 'timeout', 'lookup_failed')"


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    # add_column, not batch mode: SQLite adds a column in place, but a CHECK only by copying
    # the table (with its partial unique index); so the CHECK is PostgreSQL's alone.
    op.add_column('domains', sa.Column('last_checked_at', sa.DateTime(timezone=True),
                                       nullable=True))
    op.add_column('domains', sa.Column('last_check_code', sa.String(length=16),
                                       nullable=True))
    if _postgresql():
        op.create_check_constraint(op.f('ck_domains_last_check_code'), 'domains', CODES)


def downgrade():
    if _postgresql():
        op.drop_constraint(op.f('ck_domains_last_check_code'), 'domains', type_='check')
    op.drop_column('domains', 'last_check_code')
    op.drop_column('domains', 'last_checked_at')
