"""Periodic work: the recovery sweep and the scans that must run every so often.

Every worker process runs a small ticker thread. Each tick:

* enqueues the periodic tasks whose time slot has come. The slot is claimed in the database
  (``periodic_runs.next_due_at`` moved forward by a conditional UPDATE), so however many
  workers tick, each slot is enqueued once, and a Redis that lost everything forgets nothing
  about the schedule. A slot whose enqueue fails (Redis down) is not claimed: the next tick
  tries again. The jobs are ordinary registered tasks (cross-tenant, idempotent), so a late
  or doubled run does no harm; how each run ended is written on its row.
* keeps RQ's scheduler (delayed jobs, retries with intervals) running in *some* worker: RQ
  takes the scheduler lock only when a worker starts and at its maintenance pass (every 10
  minutes), so after the lock's holder was killed its lock lapsed (61 s) and nobody took it
  for up to ten minutes. The ticker takes a lapsed lock at once and moves due jobs itself.
  The work that matters never waits for that anyway: email and webhook retries are
  scheduled on their rows and dispatched by the recovery sweep (jobs/durable.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from jobs.enqueue import enqueue

log = logging.getLogger(__name__)
TICK_SECONDS = 5.0


@dataclass(frozen=True)
class Periodic:
    task: str
    every: int  # seconds; 0: the recovery interval (ALBEDO_RECOVERY_SECONDS)


PERIODIC = (
    # The one recovery sweep: executions, emails, webhook deliveries and bulk issues that are
    # due and not running (jobs/durable.py).
    Periodic("jobs.recover", 0),
    # license.expired for licenses whose expiry passed (cross-tenant, idempotent).
    Periodic("licensing.announce_expiries", 300),
    # Missed Stripe events and drifted subscriptions (a no-op without Stripe configured).
    Periodic("billing.reconcile", 900),
    # Ledger entries not yet reported to Stripe's meters (batched, retried with backoff).
    Periodic("billing.report_usage", 120),
    # Pending custom domains whose DNS record is now published (tenants/domains.py).
    Periodic("tenants.recheck_domains", 900),
)
NAMES = frozenset(p.task for p in PERIODIC)


def interval(item: Periodic) -> int:
    return item.every or current_app.extensions["albedo.settings"].recovery_seconds


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _claim(task_name: str, now: float, next_due: float) -> bool:
    """Move the task's next slot forward if it is due; True if this caller owns the slot."""
    from app.extensions import db
    from jobs.models import PeriodicRun

    # Read first: most ticks find nothing due, and a read takes no write lock (SQLite).
    row = db.session.get(PeriodicRun, task_name)
    if row is not None and row.next_due_at > _at(now):
        return False
    moved = db.session.execute(
        update(PeriodicRun).where(PeriodicRun.task == task_name,
                                  PeriodicRun.next_due_at <= _at(now))
        .values(next_due_at=_at(next_due), last_enqueued_at=_at(now))
        .execution_options(synchronize_session=False)).rowcount
    if moved:
        _settle_abandoned_run(task_name, now)
        return True
    if row is not None:
        return False
    db.session.add(PeriodicRun(task=task_name, next_due_at=_at(next_due),
                               last_enqueued_at=_at(now), runs=0, failures=0))
    try:
        db.session.flush()
    except IntegrityError:  # another worker's first tick
        db.session.rollback()
        return False
    return True


def _settle_abandoned_run(task_name: str, now: float) -> None:
    """A run still ``running`` past its job timeout plus the recovery grace lost its worker
    (killed mid-run): it is recorded failed with that reason as the next slot is claimed, so
    the row never shows a run that will not finish. The new slot does the work again (every
    periodic task is an idempotent scan)."""
    from app.extensions import db
    from jobs.models import PeriodicRun
    from jobs.registry import get_task

    settings = current_app.extensions["albedo.settings"]
    lease = (get_task(task_name).job_timeout() or settings.job_timeout) \
        + settings.recovery_grace_seconds
    db.session.execute(
        update(PeriodicRun).where(PeriodicRun.task == task_name,
                                  PeriodicRun.last_outcome == "running",
                                  PeriodicRun.last_started_at < _at(now - lease))
        .values(last_outcome="failed", last_finished_at=_at(now),
                failures=PeriodicRun.failures + 1,
                last_error=f"the worker stopped during the run (not finished within "
                           f"{lease} s); the next slot runs it again")
        .execution_options(synchronize_session=False))


def enqueue_due(now: float | None = None) -> list[str]:
    """Enqueue each periodic task whose slot has not been enqueued yet; returns their names."""
    from app.extensions import db

    now = time.time() if now is None else now
    started = []
    for item in PERIODIC:
        every = interval(item)
        slot = int(now // every)
        try:
            if not _claim(item.task, now, (slot + 1) * every):
                db.session.rollback()
                continue
            job_id = f"periodic-{item.task.replace('.', '_')}-{slot}"
            enqueue(item.task, tenant_id=None, job_id=job_id)
            db.session.commit()  # the slot is taken only once its job is on the queue
        except Exception:
            db.session.rollback()
            raise
        started.append(item.task)
    return started


def note_run(task_name: str, state: str, error: str | None = None) -> None:
    """Write how a periodic task's run went on its row (called by jobs.runner)."""
    from app import clock
    from app.extensions import db
    from jobs.models import PeriodicRun

    if task_name not in NAMES:
        return
    now = clock.now()
    values: dict[str, Any] = {"last_outcome": state}
    if state == "running":
        values.update(last_started_at=now, runs=PeriodicRun.runs + 1)
    else:
        values.update(last_finished_at=now, last_error=error)
        if state == "failed":
            values["failures"] = PeriodicRun.failures + 1
    try:
        db.session.rollback()
        db.session.execute(update(PeriodicRun).where(PeriodicRun.task == task_name)
                           .values(**values).execution_options(synchronize_session=False))
        db.session.commit()
    except Exception:  # bookkeeping must never fail the run it describes
        db.session.rollback()
        log.warning("could not record the run of %s", task_name, exc_info=True)


# A scheduler that has not beaten for this long is dead (RQ's own beats every second, the
# ticker's every TICK_SECONDS); its lock is taken over instead of waiting out its 61 s TTL.
SCHEDULER_STALE_SECONDS = 20.0
_RELEASE_IF_HELD_BY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _holder_is_dead(connection, holder: str) -> bool:
    """Whether the scheduler named ``holder`` is gone: its process is not alive on this host,
    or it has not beaten for SCHEDULER_STALE_SECONDS."""
    import os
    import socket

    from rq.scheduler import SCHEDULER_KEY_TEMPLATE
    from rq.utils import utcparse

    raw = {k.decode(): v.decode() for k, v in
           connection.hgetall(SCHEDULER_KEY_TEMPLATE % holder).items()}
    if not raw:
        return True  # its metadata expired with it
    if raw.get("hostname") == socket.gethostname() and raw.get("pid", "").isdigit():
        try:
            os.kill(int(raw["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    beat = raw.get("last_heartbeat")
    if not beat:
        return False
    age = (datetime.now(UTC) - utcparse(beat).replace(tzinfo=UTC)).total_seconds()
    return age > SCHEDULER_STALE_SECONDS


def _free_dead_locks(scheduler) -> None:
    connection = scheduler.connection
    release = connection.register_script(_RELEASE_IF_HELD_BY)
    for name in scheduler._queue_names:
        key = scheduler.get_locking_key(name)
        holder = connection.get(key)
        if holder is None or holder.decode() == scheduler.name:
            continue
        if _holder_is_dead(connection, holder.decode()):
            log.warning("scheduler %s holding %s is dead; taking its lock over",
                        holder.decode(), name)
            release(keys=[key], args=[holder])


def keep_scheduler(worker) -> bool:
    """Make sure some live worker does RQ's scheduler duty (delayed jobs, retry intervals).

    RQ's own scheduler process does it when this worker started with the lock. Otherwise the
    lock of a dead holder is freed (its process is gone, or it stopped beating), the lock is
    taken if free (acquire_or_refresh: ours stays ours), and the due delayed jobs are moved
    onto their queues from this thread, beating like RQ's scheduler so others see it alive.
    True while this worker holds it.
    """
    scheduler = getattr(worker, "scheduler", None)
    if scheduler is None:
        return False
    process = getattr(scheduler, "_process", None)
    if process is not None and process.is_alive():
        return True
    _free_dead_locks(scheduler)
    if not scheduler.acquire_locks():
        return False
    if scheduler.last_heartbeat is None:
        scheduler.register_birth()
    scheduler.heartbeat()
    scheduler.enqueue_scheduled_jobs()
    return True


def start_ticker(app: Flask, stop: threading.Event, worker: Any = None) -> threading.Thread:
    """The background thread of a worker process that enqueues periodic work."""

    def tick() -> None:
        while not stop.is_set():
            try:
                with app.app_context():
                    enqueue_due()
            except Exception:  # Redis or database blip: try again next tick
                log.warning("periodic tick failed", exc_info=True)
            if worker is not None:
                try:
                    keep_scheduler(worker)
                except Exception:
                    log.warning("scheduler duty failed", exc_info=True)
            stop.wait(TICK_SECONDS)

    thread = threading.Thread(target=tick, name="albedo-periodic", daemon=True)
    thread.start()
    return thread
