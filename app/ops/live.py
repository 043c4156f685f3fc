"""Figures read at scrape time (and by the system page): queues, workers, disabled endpoints.

These are states, not events, and every process would see the same values, so they are
read from Redis/RQ and the database by whichever process answers ``/metrics`` instead of
being kept in per-process files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from jobs.queues import ALL, get_queue, queue_prefix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueState:
    name: str
    depth: int
    oldest_age_seconds: float
    started: int
    scheduled: int
    failed: int


@dataclass(frozen=True)
class WorkerState:
    name: str
    state: str
    queues: tuple[str, ...]
    current_job: str | None
    current_task: str | None
    last_heartbeat: datetime | None
    successful_jobs: int
    failed_jobs: int


def _age(enqueued_at: datetime | None, now: datetime) -> float:
    if enqueued_at is None:
        return 0.0
    if enqueued_at.tzinfo is None:  # RQ stores naive UTC
        enqueued_at = enqueued_at.replace(tzinfo=UTC)
    return max((now - enqueued_at).total_seconds(), 0.0)


def queues(now: datetime | None = None) -> list[QueueState]:
    """Every queue's depth, the age of its oldest waiting job, and its registries."""
    now = now or datetime.now(UTC)
    states = []
    for name in ALL:
        queue = get_queue(name)
        oldest = 0.0
        for job_id in queue.get_job_ids(0, 1):
            job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer) \
                if queue.connection.exists(f"rq:job:{job_id}") else None
            oldest = _age(job.enqueued_at if job else None, now)
        states.append(QueueState(
            name, queue.count, oldest,
            StartedJobRegistry(queue=queue).count, ScheduledJobRegistry(queue=queue).count,
            FailedJobRegistry(queue=queue).count))
    return states


def workers() -> list[WorkerState]:
    """The RQ workers with a live heartbeat that listen on this deployment's queues."""
    queue = get_queue(ALL[0])
    prefix = queue_prefix()
    ours = {prefix + name for name in ALL}
    found = []
    for worker in Worker.all(connection=queue.connection, serializer=JSONSerializer):
        names = tuple(worker.queue_names())
        if not ours.intersection(names):
            continue
        job = worker.get_current_job()
        found.append(WorkerState(
            worker.name, str(worker.get_state()),
            tuple(n[len(prefix):] for n in names if n in ours),
            job.id if job else None,
            (job.meta or {}).get("task") if job else None,
            worker.last_heartbeat, worker.successful_job_count, worker.failed_job_count))
    return found


def disabled_endpoints() -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.integrations.models import WebhookEndpoint

    try:
        return db.session.scalar(
            select(func.count()).select_from(WebhookEndpoint)
            .where(WebhookEndpoint.enabled.is_(False))
            .execution_options(cross_tenant="metrics count disabled endpoints platform-wide"))
    finally:
        db.session.rollback()


class LiveCollector:
    """A prometheus_client collector over :func:`queues`, :func:`workers` and the database."""

    def collect(self):
        try:
            states = queues()
            alive = workers()
        except Exception:  # Redis down: these series vanish, and the alert on them fires
            log.warning("metrics: could not read the queues", exc_info=True)
        else:
            depth = GaugeMetricFamily("albedo_queue_depth", "Jobs waiting in a queue",
                                      labels=["queue"])
            age = GaugeMetricFamily("albedo_queue_oldest_job_age_seconds",
                                    "How long the oldest waiting job has waited",
                                    labels=["queue"])
            started = GaugeMetricFamily("albedo_queue_started_jobs", "Jobs running now",
                                        labels=["queue"])
            scheduled = GaugeMetricFamily("albedo_queue_scheduled_jobs",
                                          "Jobs waiting for their retry or delay",
                                          labels=["queue"])
            failed = GaugeMetricFamily("albedo_queue_failed_jobs",
                                       "Jobs in RQ's failed registry", labels=["queue"])
            for state in states:
                depth.add_metric([state.name], state.depth)
                age.add_metric([state.name], state.oldest_age_seconds)
                started.add_metric([state.name], state.started)
                scheduled.add_metric([state.name], state.scheduled)
                failed.add_metric([state.name], state.failed)
            yield from (depth, age, started, scheduled, failed)
            yield GaugeMetricFamily("albedo_workers_alive",
                                    "RQ workers with a live heartbeat", value=len(alive))
            yield GaugeMetricFamily("albedo_workers_busy", "RQ workers running a job now",
                                    value=sum(1 for w in alive if w.current_job))
        try:
            disabled = disabled_endpoints()
        except Exception:
            log.warning("metrics: could not count disabled endpoints", exc_info=True)
        else:
            yield GaugeMetricFamily("albedo_webhook_endpoints_disabled_current",
                                    "Webhook endpoints disabled now", value=disabled)
