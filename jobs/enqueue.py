"""The one way to start background work: ``enqueue(task_name, *json_args)``."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from redis.exceptions import RedisError
from rq import Retry
from rq.job import Job
from sqlalchemy import event
from sqlalchemy.orm import Session

from jobs.queues import get_queue
from jobs.registry import get_task
from tenants.context import NoTenantError, current_id, current_or_none

log = logging.getLogger(__name__)
RUNNER = "jobs.runner.run"
_PENDING = "albedo_jobs_after_commit"
_NO_TENANT = object()


def enqueue(task_name: str, *args: Any, tenant_id: uuid.UUID | object | None = _NO_TENANT,
            job_id: str | None = None, delay_seconds: int | None = None,
            **kwargs: Any) -> Job:
    """Put ``task_name(*args, **kwargs)`` on its queue now, for the tenant in context.

    Arguments must be JSON (ids, not ORM objects). ``job_id`` makes enqueueing idempotent:
    RQ keeps one job per id.
    """
    task = get_task(task_name)
    tenant = current_id() if tenant_id is _NO_TENANT else tenant_id
    if task.tenant_scoped and tenant is None:
        raise NoTenantError(f"task {task_name!r} is tenant-scoped and no tenant is in context")
    try:
        json.dumps([args, kwargs])
    except TypeError as exc:
        raise TypeError(f"job arguments must be JSON (pass ids, not objects): {exc}") from None
    slug = current_or_none().slug if current_or_none() and tenant == current_id() else None
    options: dict[str, Any] = {
        "args": (task_name, str(tenant) if tenant else None, list(args), kwargs),
        "job_id": job_id,
        "meta": {"task": task_name, "tenant_id": str(tenant) if tenant else None},
        "description": f"{task_name} (tenant {slug or tenant or '-'})",
        "job_timeout": task.job_timeout(),
        "failure_ttl": 7 * 24 * 3600,
        "result_ttl": 24 * 3600,
    }
    if task.retry_intervals:
        options["retry"] = Retry(max=len(task.retry_intervals),
                                 interval=list(task.retry_intervals))
    queue = get_queue(task.queue)
    if delay_seconds:
        from datetime import timedelta

        return queue.enqueue_in(timedelta(seconds=delay_seconds), RUNNER, **options)
    return queue.enqueue(RUNNER, **options)


def enqueue_after_commit(session: Session, task_name: str, *args: Any,
                         job_id: str | None = None, **kwargs: Any) -> None:
    """Enqueue once ``session`` commits, so the worker finds the rows the job names.

    Nothing is enqueued if the transaction rolls back. Only for durable work (a row the
    recovery sweep of jobs/durable.py looks after): if Redis is down at the commit, the row is
    stored all the same and the enqueue is only logged, since the sweep dispatches the row
    once Redis is back. The request that stored it still succeeds (202, not a 500).
    """
    get_task(task_name)  # fail now, not after the commit, on a typo
    tenant = current_id()
    session.info.setdefault(_PENDING, []).append((task_name, args, kwargs, job_id, tenant))


@event.listens_for(Session, "after_commit")
def _flush_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    for task_name, args, kwargs, job_id, tenant in pending:
        try:
            enqueue(task_name, *args, tenant_id=tenant, job_id=job_id, **kwargs)
        except (RedisError, OSError):
            log.warning("could not enqueue %s (%s): Redis is unreachable; the row is stored "
                        "and the recovery sweep dispatches it", task_name, job_id,
                        exc_info=True)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
