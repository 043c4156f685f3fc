"""Helpers to drive RQ in tests without waiting on wall-clock retry intervals."""

from __future__ import annotations

from rq.registry import ScheduledJobRegistry

from jobs.queues import get_queue
from jobs.worker import run_worker


def run_jobs(app, *queues: str) -> None:
    """Run every job waiting on ``queues`` on a real (non-forking) RQ worker, then return."""
    run_worker(app, list(queues), burst=True, simple=True)


def release_scheduled(app, queue_name: str) -> int:
    """Move retries scheduled for later onto the queue now (the retry interval 'passes')."""
    with app.app_context():
        queue = get_queue(queue_name)
        registry = ScheduledJobRegistry(queue=queue)
        ids = registry.get_job_ids()
        for job_id in ids:
            registry.requeue(job_id)
        return len(ids)
