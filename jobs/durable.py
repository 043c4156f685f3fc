"""Durable work: the database row decides, Redis only carries.

Every unit of background work (an execution, an email, a webhook delivery, a bulk issue, an
automatic credit top-up, a periodic task) is a row with a state, an attempt count, a lease
or next-attempt time and a final reason. An RQ job is only a *hint* to look at that row now:
a job that is lost (Redis restarted empty, a worker SIGKILLed, an enqueue that failed while
Redis was down) delays the work and never loses it, because the one recovery sweep below
(``jobs.recover``, enqueued by the periodic ticker of every worker, jobs/periodic.py) asks
each feature what is due and not running, and dispatches it again:

* queued for longer than the grace period with no live job (queued or started) in Redis;
* running past its lease (its worker died): retried, or failed with a reason after its
  attempts;
* scheduled (a retry's next-attempt time) and due.

A job delivered twice is harmless: each feature *claims* its row with a conditional UPDATE
before doing anything, so a second delivery finds nothing to claim.

Re-dispatching is bounded too (:func:`redispatch`): each re-dispatch is counted on the row
(``dispatches``, set back to 0 by a worker's claim), and a unit that no worker took after
ALBEDO_MAX_DISPATCHES re-dispatches in a row ends ``failed`` with ``dispatch_attempts_exhausted``
(its feature releases what it reserved and announces the failure as for any other), instead of
being dispatched for ever while its jobs keep getting lost.

Features register a *recoverer* (``@recoverer("emails")``); the sweep runs them one after
another, each in its own transaction, and one failing does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import update

from jobs.enqueue import enqueue
from jobs.queues import get_queue
from jobs.registry import get_task, load_all, task

log = logging.getLogger(__name__)
# A job in one of these states will reach (or is at) its row: nothing to re-dispatch.
LIVE = frozenset({JobStatus.QUEUED, JobStatus.STARTED})


@dataclass(frozen=True)
class Sweep:
    """What one recovery pass knows: its moment and the grace a unit gets."""

    now: datetime
    grace: timedelta

    @property
    def stale_before(self) -> datetime:
        """Queued before this and still without a live job: the job was lost."""
        return self.now - self.grace


_RECOVERERS: dict[str, Callable[[Sweep], dict[str, int]]] = {}


def recoverer(name: str):
    """Register ``func(sweep) -> counts`` as the recovery of one kind of work."""

    def register(func: Callable[[Sweep], dict[str, int]]) -> Callable[[Sweep], dict[str, int]]:
        _RECOVERERS[name] = func
        return func

    return register


def grace() -> timedelta:
    return timedelta(seconds=current_app.extensions["albedo.settings"].recovery_grace_seconds)


def job_is_live(task_name: str, job_id: str) -> bool:
    """Whether RQ holds job ``job_id`` queued or running (so it will reach its row)."""
    queue = get_queue(get_task(task_name).queue)
    try:
        job = Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
        return job.get_status(refresh=False) in LIVE
    except NoSuchJobError:
        return False


# The reason a unit ends with when its jobs kept getting lost (ALBEDO_MAX_DISPATCHES).
EXHAUSTED = "dispatch_attempts_exhausted"


def max_dispatches() -> int:
    return current_app.extensions["albedo.settings"].max_dispatches


def exhausted_message(dispatches: int) -> str:
    return (f"Dispatched again {dispatches} times, its job was lost each time before any "
            f"worker took it (the job queue lost it, or was unreachable); it was given up.")


def redispatch(model: Any, row_id: Any, dispatches: int, task_name: str, *args: Any,
               tenant_id: Any, job_id: str, still: tuple = ()) -> str:
    """Dispatch a unit again, counted on its row: ``dispatched``; ``skipped`` (a live job
    carries it, or the row moved meanwhile); or ``exhausted``, when ``dispatches`` (what the
    caller read) reached ALBEDO_MAX_DISPATCHES: the caller ends the unit failed with
    :data:`EXHAUSTED`.

    ``still``: the conditions that made the unit due (e.g. its status), checked again by the
    conditional UPDATE that counts the dispatch, so a unit claimed meanwhile is left alone.
    The count is committed before the enqueue: a dispatch that then fails still counts.
    """
    from app.extensions import db

    if job_is_live(task_name, job_id):
        return "skipped"
    if dispatches >= max_dispatches():
        return "exhausted"
    counted = db.session.execute(
        update(model).where(model.id == row_id, model.dispatches == dispatches, *still)
        .values(dispatches=dispatches + 1)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if not counted:
        return "skipped"
    enqueue(task_name, *args, tenant_id=tenant_id, job_id=job_id)
    return "dispatched"


def revive_each(statement: Any, reason: str, sweep: Sweep,
                revive: Callable[[Any, Sweep], str]) -> dict[str, int]:
    """Run ``revive(row_id, sweep)`` in each row's tenant for the ``(id, tenant_id)`` rows
    ``statement`` selects across tenants (``reason`` says why); counts what each returned
    (``dispatched``, ``failed`` or ``skipped``)."""
    from app.extensions import db
    from tenants.service import acting_as

    rows = db.session.execute(statement.limit(1000)
                              .execution_options(cross_tenant=reason)).all()
    db.session.rollback()
    outcome = {"dispatched": 0, "failed": 0, "skipped": 0}
    for row_id, tenant_id in rows:
        with acting_as(tenant_id) as found:
            if found:
                outcome[revive(row_id, sweep)] += 1
    return outcome


def recover(now: datetime | None = None) -> dict[str, dict[str, int]]:
    """One recovery pass over every kind of durable work; returns what each did."""
    from app import clock
    from app.extensions import db

    load_all()  # every feature's recoverer registers with its tasks
    sweep = Sweep(now or clock.now(), grace())
    outcome: dict[str, dict[str, int]] = {}
    for name, func in sorted(_RECOVERERS.items()):
        try:
            outcome[name] = func(sweep)
        except Exception:  # one broken feature must not stop the recovery of the others
            log.exception("recovery of %s failed; the next sweep tries again", name)
            db.session.rollback()
            outcome[name] = {"error": 1}
    return outcome


@task("jobs.recover", tenant_scoped=False, retry_intervals=())
def recover_task() -> dict[str, dict[str, int]]:
    return recover()
