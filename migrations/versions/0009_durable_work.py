"""durable work: claims, leases and schedules on the rows; periodic runs; RLS on domains and
Stripe events

Revision ID: 0009
Revises: 0008

* emails: ``sending`` (claimed before the send), ``next_attempt_at`` and ``lease_until``;
* license_bulk_issues: ``attempts`` and ``lease_until`` (a killed run is resumed);
* agent_executions: ``idempotency_fingerprint`` (the same key with another body is refused);
* periodic_runs: one row per periodic task, the slot claim and the last outcome;
* row-level security on ``domains`` and ``billing_stripe_events``: each tenant writes its own
  rows; anyone reads what host resolution needs (verified domains, the hostnames that serve
  a site anyway); Stripe events not yet routed (no tenant) are platform rows.
"""
from alembic import op
import sqlalchemy as sa

from tenants.migration_ops import POLICY_PREDICATE

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_EMAIL_STATUSES_NEW = "status IN ('queued', 'sending', 'retrying', 'sent', 'failed')"
_EMAIL_STATUSES_OLD = "status IN ('queued', 'retrying', 'sent', 'failed')"


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _email_status_check(predicate: str) -> None:
    if _is_postgres():
        op.execute("ALTER TABLE emails DROP CONSTRAINT ck_emails_status")
        op.execute(f"ALTER TABLE emails ADD CONSTRAINT ck_emails_status CHECK ({predicate})")
        return
    # SQLite cannot alter a CHECK: batch mode copies the table, which drops its triggers,
    # so the tenant_id guard is installed again right after.
    with op.batch_alter_table('emails', recreate='always') as batch_op:
        batch_op.drop_constraint(op.f('ck_emails_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_emails_status'), predicate)
    op.execute("DROP TRIGGER IF EXISTS emails_tenant_id_immutable")
    op.execute("CREATE TRIGGER emails_tenant_id_immutable BEFORE UPDATE OF tenant_id "
               "ON emails WHEN NEW.tenant_id IS NOT OLD.tenant_id "
               "BEGIN SELECT RAISE(ABORT, 'tenant_id is immutable'); END")


def upgrade():
    op.add_column('emails', sa.Column('next_attempt_at', sa.DateTime(timezone=True),
                                      nullable=True))
    op.add_column('emails', sa.Column('lease_until', sa.DateTime(timezone=True),
                                      nullable=True))
    _email_status_check(_EMAIL_STATUSES_NEW)
    op.create_index('ix_emails_status', 'emails', ['status'], unique=False)

    op.add_column('license_bulk_issues', sa.Column('attempts', sa.Integer(), nullable=False,
                                                   server_default='0'))
    op.add_column('license_bulk_issues', sa.Column('lease_until', sa.DateTime(timezone=True),
                                                   nullable=True))
    op.add_column('agent_executions', sa.Column('idempotency_fingerprint', sa.String(64),
                                                nullable=True))
    op.create_index('ix_agent_executions_status_created', 'agent_executions',
                    ['status', 'created_at'], unique=False)

    op.create_table(
        'periodic_runs',
        sa.Column('task', sa.String(length=100), nullable=False),
        sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_enqueued_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_outcome', sa.String(length=16), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('runs', sa.Integer(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('task', name=op.f('pk_periodic_runs')),
    )

    if _is_postgres():
        _domains_rls()
        _stripe_events_rls()


# The platform operator's own tenant manages every reseller's domains (its admin pages and API).
_PLATFORM_ACTING = (
    "EXISTS (SELECT 1 FROM tenants t WHERE t.kind = 'platform' "
    "AND t.id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)"
)


def _domains_rls() -> None:
    # Host resolution runs before any tenant is known: it may read the verified domains
    # (hostnames that already serve a site, their tokens already published in DNS). An
    # unverified domain, and its verification token, is its tenant's alone (or the platform
    # operator's, or an explicit cross-tenant opt-in's), and so is every write.
    owner = f"{POLICY_PREDICATE} OR {_PLATFORM_ACTING}"
    op.execute("ALTER TABLE domains ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE domains FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY domains_resolve ON domains FOR SELECT "
               "USING (verified_at IS NOT NULL)")
    op.execute(f"CREATE POLICY tenant_isolation ON domains "
               f"USING ({owner}) WITH CHECK ({owner})")
    op.execute("CREATE TRIGGER domains_tenant_id_immutable BEFORE UPDATE ON domains "
               "FOR EACH ROW WHEN (NEW.tenant_id IS DISTINCT FROM OLD.tenant_id) "
               "EXECUTE FUNCTION albedo_refuse_tenant_change()")


def _stripe_events_rls() -> None:
    # An event is stored before it is routed (tenant_id NULL: a platform row), then given
    # its tenant in the same transaction, by the platform's routing (cross-tenant opt-in).
    unrouted_or_own = f"tenant_id IS NULL OR {POLICY_PREDICATE}"
    op.execute("ALTER TABLE billing_stripe_events ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE billing_stripe_events FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON billing_stripe_events "
               f"USING ({unrouted_or_own}) WITH CHECK ({unrouted_or_own})")


def downgrade():
    if _is_postgres():
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON billing_stripe_events")
        op.execute("ALTER TABLE billing_stripe_events NO FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE billing_stripe_events DISABLE ROW LEVEL SECURITY")
        op.execute("DROP TRIGGER IF EXISTS domains_tenant_id_immutable ON domains")
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON domains")
        op.execute("DROP POLICY IF EXISTS domains_resolve ON domains")
        op.execute("ALTER TABLE domains NO FORCE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE domains DISABLE ROW LEVEL SECURITY")
    op.drop_table('periodic_runs')
    op.drop_index('ix_agent_executions_status_created', table_name='agent_executions')
    op.drop_column('agent_executions', 'idempotency_fingerprint')
    op.drop_column('license_bulk_issues', 'lease_until')
    op.drop_column('license_bulk_issues', 'attempts')
    op.drop_index('ix_emails_status', table_name='emails')
    op.execute("UPDATE emails SET status = 'retrying' WHERE status = 'sending'")
    _email_status_check(_EMAIL_STATUSES_OLD)
    op.drop_column('emails', 'lease_until')
    op.drop_column('emails', 'next_attempt_at')
