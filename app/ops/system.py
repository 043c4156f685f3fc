"""What the platform operator's system page shows and does: queues, workers, failed units
(with retry and discard), recent errors by code, and the tenants using the most.

Everything here reads across tenants, each statement with its named reason; acting on one
unit happens inside that unit's own tenant (``tenants.service.acting_as``), and the
operator's action is written to the platform's audit log in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import delete, func, select

from app import clock
from app.auth import audit
from app.errors import ApiError
from app.extensions import db
from app.ops import live, recent_errors
from app.ops.models import Dismissal
from app.ops.sentry import scrub_text
from jobs.queues import ALL, get_queue
from tenants.context import cross_tenant, current
from tenants.models import Tenant

KINDS = ("job", "email", "delivery", "execution")
UNITS_PER_KIND = 50
_READ = "the platform operator's system page reads every tenant's failed work"


@dataclass(frozen=True)
class FailedUnit:
    kind: str
    id: str
    tenant: str | None  # slug
    what: str
    error: str
    failed_at: datetime | None


def _error(text: str | None) -> str:
    """The last line of an error, without anything that looks like a credential."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return scrub_text(lines[-1] if lines else "")[:300]


def _slugs(tenant_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not tenant_ids:
        return {}
    return dict(db.session.execute(select(Tenant.id, Tenant.slug)
                                   .where(Tenant.id.in_(tenant_ids))).all())


def _dismissed(kind: str, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    return set(db.session.scalars(select(Dismissal.unit_id).where(
        Dismissal.kind == kind, Dismissal.unit_id.in_(ids))))


def _rows(kind: str):
    """(model, statement) of a kind's failed rows, newest first."""
    from app.agents.models import Execution
    from app.email.models import OutboundEmail
    from app.integrations.models import WebhookDelivery

    if kind == "email":
        return OutboundEmail, select(OutboundEmail.id, OutboundEmail.tenant_id,
                                     OutboundEmail.template, OutboundEmail.last_error,
                                     OutboundEmail.updated_at).where(
            OutboundEmail.status == "failed").order_by(OutboundEmail.updated_at.desc())
    if kind == "delivery":
        return WebhookDelivery, select(WebhookDelivery.id, WebhookDelivery.tenant_id,
                                       WebhookDelivery.url, WebhookDelivery.last_error,
                                       WebhookDelivery.updated_at).where(
            WebhookDelivery.status == "failed").order_by(WebhookDelivery.updated_at.desc())
    return Execution, select(Execution.id, Execution.tenant_id, Execution.model,
                             Execution.error_code, Execution.finished_at).where(
        Execution.status.in_(("failed", "timed_out"))).order_by(Execution.finished_at.desc())


def _what(kind: str, value: str) -> str:
    if kind == "delivery":  # the receiver's host only: paths and queries can hold secrets
        from urllib.parse import urlsplit

        return urlsplit(value).hostname or "?"
    return value or "?"


def failed_rows(kind: str, limit: int = UNITS_PER_KIND) -> list[FailedUnit]:
    _, statement = _rows(kind)
    # Extra rows make up for dismissed ones.
    rows = db.session.execute(statement.limit(limit * 2)
                              .execution_options(cross_tenant=_READ)).all()
    dismissed = _dismissed(kind, [str(r[0]) for r in rows])
    slugs = _slugs({r[1] for r in rows})
    units = [FailedUnit(kind, str(r[0]), slugs.get(r[1]), _what(kind, r[2]), _error(r[3]),
                        r[4]) for r in rows if str(r[0]) not in dismissed]
    return units[:limit]


def failed_jobs(limit: int = UNITS_PER_KIND) -> list[FailedUnit]:
    """Jobs in RQ's failed registries (every queue), newest first."""
    units: list[FailedUnit] = []
    tenant_ids: dict[str, uuid.UUID] = {}
    for name in ALL:
        queue = get_queue(name)
        registry = FailedJobRegistry(queue=queue)
        ids = registry.get_job_ids(0, limit - 1)
        for job in Job.fetch_many(ids, connection=queue.connection, serializer=JSONSerializer):
            if job is None:
                continue
            meta = job.meta or {}
            result = job.latest_result()
            error = result.exc_string if result is not None else ""
            if meta.get("tenant_id"):
                tenant_ids[job.id] = uuid.UUID(meta["tenant_id"])
            units.append(FailedUnit("job", job.id, None, f"{name}: {meta.get('task', '?')}",
                                    _error(error), job.ended_at))
    slugs = _slugs(set(tenant_ids.values()))
    units = [FailedUnit(u.kind, u.id, slugs.get(tenant_ids.get(u.id)), u.what, u.error,
                        u.failed_at) for u in units]
    units.sort(key=lambda u: u.failed_at or datetime.min, reverse=True)
    return units[:limit]


def top_tenants(days: int = 30, limit: int = 10) -> list[dict[str, Any]]:
    """Tenants by executions over the last ``days`` days, with tokens and provider cost."""
    from app.agents.models import Execution

    since = clock.now() - timedelta(days=days)
    tokens = func.sum(Execution.prompt_tokens + Execution.completion_tokens)
    rows = db.session.execute(
        select(Tenant.slug, Tenant.name, func.count(Execution.id), tokens,
               func.sum(Execution.cost_micros))
        .join(Tenant, Tenant.id == Execution.tenant_id)
        .where(Execution.created_at >= since)
        .group_by(Tenant.slug, Tenant.name)
        .order_by(func.count(Execution.id).desc(), Tenant.slug).limit(limit)
        .execution_options(cross_tenant="the platform operator ranks tenants by usage")).all()
    return [{"slug": slug, "name": name, "executions": int(count), "tokens": int(used or 0),
             "cost_usd": round((cost or 0) / 1_000_000, 6)}
            for slug, name, count, used, cost in rows]


def overview() -> dict[str, Any]:
    """Everything the system page shows, as plain data (the API answers it as JSON)."""
    try:
        queues = [asdict(q) for q in live.queues()]
        workers = [asdict(w) for w in live.workers()]
        jobs = failed_jobs()
        redis_error = None
    except Exception as exc:  # Redis down: the page still shows what the database knows
        queues, workers, jobs = [], [], []
        redis_error = f"Redis is unreachable ({type(exc).__name__})."
    try:
        errors = recent_errors.by_code()
    except Exception:
        errors = {}
    units = jobs + [u for kind in ("email", "delivery", "execution") for u in failed_rows(kind)]
    db.session.rollback()  # end the read transaction: nothing here writes
    return {"queues": queues, "workers": workers,
            "failed_units": [asdict(u) for u in units],
            "recent_errors": [{"code": c, "count": n} for c, n in errors.items()],
            "top_tenants": top_tenants(), "redis_error": redis_error,
            "generated_at": clock.now()}


# --- acting on one failed unit ---------------------------------------------------------------

def _not_found() -> ApiError:
    return ApiError(404, "not_found", "No failed unit of this kind has this id.")


def _job_registry(job_id: str) -> FailedJobRegistry:
    for name in ALL:
        registry = FailedJobRegistry(queue=get_queue(name))
        if job_id in registry:
            return registry
    raise _not_found()


def _in_unit_tenant(kind: str, unit_id: str):
    """(model row, tenant id) of a failed database unit, found across tenants."""
    model, statement = _rows(kind)
    try:
        key = uuid.UUID(unit_id)
    except ValueError:
        raise _not_found() from None
    row = db.session.execute(statement.where(model.id == key).limit(1)
                             .execution_options(cross_tenant=_READ)).first()
    if row is None:
        raise _not_found()
    return key, row[1]


def _audit(action: str, kind: str, unit_id: str, tenant_id: uuid.UUID | None,
           platform_id: uuid.UUID, actor: dict[str, Any]) -> None:
    slug = _slugs({tenant_id}).get(tenant_id) if tenant_id else None
    with cross_tenant("the platform operator's action is recorded in the platform's log"):
        audit.record(action, **actor, target_type=kind, target_id=unit_id,
                     tenant_id=platform_id, unit_tenant=slug)
        db.session.flush()


def retry(kind: str, unit_id: str) -> None:
    """Run a failed unit again. The operator's action is audited."""
    if kind not in KINDS:
        raise _not_found()
    platform_id, actor = current().id, audit.acting()
    if kind == "job":
        registry = _job_registry(unit_id)
        registry.requeue(unit_id)
        _audit("failed_unit_retried", kind, unit_id, None, platform_id, actor)
        db.session.commit()
        return
    key, tenant_id = _in_unit_tenant(kind, unit_id)
    from tenants.service import acting_as

    with acting_as(tenant_id) as found:
        if not found:
            raise _not_found()
        _RETRY[kind](key)
        # Should it fail again, it is listed again.
        db.session.execute(delete(Dismissal).where(Dismissal.kind == kind,
                                                   Dismissal.unit_id == unit_id))
        _audit("failed_unit_retried", kind, unit_id, tenant_id, platform_id, actor)
        db.session.commit()


def _retry_email(key: uuid.UUID) -> None:
    from app.email.models import OutboundEmail
    from jobs.enqueue import enqueue_after_commit

    email = db.session.get(OutboundEmail, key)
    email.status, email.dispatches = "queued", 0  # a fresh count of lost jobs
    enqueue_after_commit(db.session, "emails.deliver", str(email.id),
                         job_id=f"email-{email.id}-retry-{email.attempts}")


def _retry_delivery(key: uuid.UUID) -> None:
    from app.integrations.models import WebhookDelivery
    from app.integrations.service import replay

    replay(db.session.get(WebhookDelivery, key))


def _retry_execution(key: uuid.UUID) -> None:
    from app.agents.executions import TASK, job_id_for
    from app.agents.models import Execution
    from jobs.enqueue import enqueue_after_commit

    execution = db.session.get(Execution, key)
    execution.status, execution.dispatches = "queued", 0  # a fresh count of lost jobs
    execution.error_code = execution.error_message = None
    execution.started_at = execution.finished_at = execution.first_token_at = None
    execution.output = ""
    enqueue_after_commit(db.session, TASK, str(execution.id),
                         job_id=job_id_for(execution.id, execution.attempts) + "-retry")


_RETRY = {"email": _retry_email, "delivery": _retry_delivery, "execution": _retry_execution}


def discard(kind: str, unit_id: str) -> None:
    """Take a failed unit off the list: an RQ job is deleted; a database unit, whose row is
    its tenant's history, is dismissed (recorded) rather than changed."""
    if kind not in KINDS:
        raise _not_found()
    platform_id, actor = current().id, audit.acting()
    tenant_id = None
    if kind == "job":
        _job_registry(unit_id).remove(unit_id, delete_job=True)
    else:
        _, tenant_id = _in_unit_tenant(kind, unit_id)
        if not _dismissed(kind, [unit_id]):
            db.session.add(Dismissal(kind=kind, unit_id=unit_id,
                                     dismissed_by=actor.get("actor_label")
                                     or str(actor.get("actor_user_id") or "")))
    _audit("failed_unit_discarded", kind, unit_id, tenant_id, platform_id, actor)
    db.session.commit()
