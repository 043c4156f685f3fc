"""Periodic work: sweeps and reconciliation that must run every so often.

Every worker process runs a small ticker thread; each tick enqueues the tasks whose time
slot has come. A Redis SET NX per (task, slot) means that however many workers tick, each
slot is enqueued once. The jobs themselves are ordinary registered tasks (cross-tenant,
idempotent), so a late or doubled run does no harm.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask

from jobs.enqueue import enqueue

log = logging.getLogger(__name__)
TICK_SECONDS = 5.0


@dataclass(frozen=True)
class Periodic:
    task: str
    every: int  # seconds


PERIODIC = (
    # Executions whose worker died mid-run are retried or failed.
    Periodic("agents.sweep", 60),
    # Webhook deliveries whose retry time has come (and ones lost with a dead worker).
    Periodic("integrations.dispatch_due", 30),
    # license.expired for licenses whose expiry passed (cross-tenant, idempotent).
    Periodic("licensing.announce_expiries", 300),
    # Missed Stripe events and drifted subscriptions (a no-op without Stripe configured).
    Periodic("billing.reconcile", 900),
    # Ledger entries not yet reported to Stripe's meters (batched, retried with backoff).
    Periodic("billing.report_usage", 120),
)


def enqueue_due(now: float | None = None) -> list[str]:
    """Enqueue each periodic task whose slot has not been enqueued yet; returns their names."""
    from app.redis import get_redis

    now = time.time() if now is None else now
    redis = get_redis()
    started = []
    for item in PERIODIC:
        slot = int(now // item.every)
        if redis.set(f"albedo:periodic:{item.task}:{slot}", "1", nx=True, ex=item.every * 2):
            job_id = f"periodic-{item.task.replace('.', '_')}-{slot}"
            enqueue(item.task, tenant_id=None, job_id=job_id)
            started.append(item.task)
    return started


def start_ticker(app: Flask, stop: threading.Event) -> threading.Thread:
    """The background thread of a worker process that enqueues periodic work."""

    def tick() -> None:
        while not stop.is_set():
            try:
                with app.app_context():
                    enqueue_due()
            except Exception:  # Redis blip: try again next tick, never kill the worker
                log.warning("periodic tick failed", exc_info=True)
            stop.wait(TICK_SECONDS)

    thread = threading.Thread(target=tick, name="albedo-periodic", daemon=True)
    thread.start()
    return thread
