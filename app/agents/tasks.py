"""Jobs on the `agents` queue: run an execution; sweep executions whose worker died.

``agents.execute`` has no RQ retries of its own: the engine retries the provider itself (only
before the first token), and a crashed run is the sweeper's business, because only the
execution row knows whether tokens already went out.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update

from app import clock
from app.agents import engine, quotas, streaming
from app.agents.config import agents_config
from app.agents.executions import TASK, job_id_for
from app.agents.models import Execution
from app.api import idempotency
from app.extensions import db
from jobs.durable import EXHAUSTED, Sweep, exhausted_message, recoverer, redispatch
from jobs.enqueue import enqueue
from jobs.queues import AGENTS
from jobs.registry import task

log = logging.getLogger(__name__)
# A run gets its timeout plus this much before the sweeper calls it dead.
SWEEP_GRACE = timedelta(seconds=60)
MAX_ATTEMPTS = 3
_REASON = "the sweeper looks for executions whose worker died, in every tenant"


def _job_timeout() -> int:
    """The worker ends a run stuck past the engine's own deadline, before the sweeper would
    call its worker dead and start it again (so a stuck run never overlaps its retry)."""
    return int(agents_config().timeout_seconds + SWEEP_GRACE.total_seconds() / 2)


@task(TASK, queue=AGENTS, retry_intervals=(), timeout=_job_timeout)
def execute(execution_id: str) -> dict[str, Any]:
    return engine.run(execution_id)


def _revive(execution_id: uuid.UUID, now) -> str:
    """Inside the execution's tenant: requeue it if nothing was streamed, else fail it."""
    execution = db.session.get(Execution, execution_id)
    if execution is None or execution.status != "running":
        return "skipped"
    if execution.first_token_at is None and execution.attempts < MAX_ATTEMPTS:
        moved = db.session.execute(
            update(Execution).where(Execution.id == execution.id,
                                    Execution.status == "running",
                                    Execution.attempts == execution.attempts)
            .values(status="queued", started_at=None)
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if moved:
            enqueue(TASK, str(execution.id), job_id=job_id_for(execution.id, execution.attempts))
            streaming.publish(str(execution.id), "status",
                              {"status": "queued", "note": "worker lost; retrying"})
            return "requeued"
        return "skipped"
    engine.finish(execution, "failed", code="worker_lost",
                  message="The worker running this execution stopped before it finished"
                          + (" (after the answer had started streaming)."
                             if execution.first_token_at else "."))
    return "failed"


def sweep() -> dict[str, int]:
    """Resolve every execution still ``running`` past its timeout plus a grace period."""
    from tenants.service import acting_as

    now = clock.now()
    cutoff = now - timedelta(seconds=agents_config().timeout_seconds) - SWEEP_GRACE
    rows = db.session.execute(
        select(Execution.id, Execution.tenant_id).where(
            Execution.status == "running",
            or_(Execution.started_at.is_(None), Execution.started_at < cutoff))
        .execution_options(cross_tenant=_REASON)).all()
    db.session.rollback()
    outcome = {"requeued": 0, "failed": 0, "skipped": 0}
    for execution_id, tenant_id in rows:
        with acting_as(tenant_id) as found:
            if found:
                outcome[_revive(execution_id, now)] += 1
    return outcome


@task("agents.sweep", queue=AGENTS, tenant_scoped=False, retry_intervals=())
def sweep_task() -> dict[str, int]:
    return sweep()


@recoverer("executions")
def recover(now: Sweep) -> dict[str, int]:
    """Executions: running past their lease (above), queued with no live job (Redis lost it,
    or was down when it was stored), and Idempotency-Keys past their 24 hours. A queued
    execution whose job was lost ALBEDO_MAX_DISPATCHES times in a row ends failed."""
    from tenants.service import acting_as

    outcome = sweep()
    rows = db.session.execute(
        select(Execution.id, Execution.tenant_id, Execution.attempts, Execution.dispatches)
        .where(Execution.status == "queued", Execution.created_at < now.stale_before,
               Execution.cancel_requested.is_(False))
        .limit(1000).execution_options(cross_tenant=_REASON)).all()
    db.session.rollback()
    outcome.update(dispatched=0, exhausted=0)
    for execution_id, tenant_id, attempts, dispatches in rows:
        with acting_as(tenant_id) as found:
            if not found:
                continue
            result = redispatch(Execution, execution_id, dispatches, TASK, str(execution_id),
                                tenant_id=tenant_id, job_id=job_id_for(execution_id, attempts),
                                still=(Execution.status == "queued",
                                       Execution.cancel_requested.is_(False)))
            if result == "exhausted" and _give_up(execution_id, dispatches):
                outcome["exhausted"] += 1
            elif result == "dispatched":
                outcome["dispatched"] += 1
    outcome["keys_forgotten"] = idempotency.forget_expired(Execution, now.now)
    db.session.commit()
    return outcome


def _give_up(execution_id: uuid.UUID, dispatches: int) -> bool:
    """End a queued execution whose jobs kept getting lost: failed, dispatch_attempts_exhausted.

    The conditional UPDATE takes it from ``queued`` first, so a worker's claim and this never
    both win. Then it ends like any failure (engine.finish: the spending hold released, no
    charge, ``execution.failed`` for webhooks), and the quota it counted is given back: it
    never ran.
    """
    failed = db.session.execute(
        update(Execution).where(Execution.id == execution_id, Execution.status == "queued",
                                Execution.dispatches == dispatches)
        .values(status="failed").execution_options(synchronize_session=False)).rowcount
    if not failed:
        db.session.rollback()
        return False
    execution = db.session.get(Execution, execution_id, populate_existing=True)
    quotas.release(execution.caller_user_id, execution.api_key_id, execution.license_id,
                   execution.created_at)
    engine.finish(execution, "failed", code=EXHAUSTED, message=exhausted_message(dispatches))
    return True
