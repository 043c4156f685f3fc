"""Periodic work is enqueued once per slot, however many workers tick, and runs cleanly."""

from jobs.periodic import PERIODIC, enqueue_due
from jobs.queues import get_queue
from tests.jobs_helpers import run_jobs


def test_each_slot_is_enqueued_once_and_the_next_slot_again(app):
    now = 1_800_000_000.0
    with app.app_context():
        first = enqueue_due(now)
        assert sorted(first) == sorted(p.task for p in PERIODIC)
        assert enqueue_due(now) == []  # a second worker ticking in the same slot
        assert enqueue_due(now + 1) == []
        assert enqueue_due(now + 30) == ["integrations.dispatch_due"]
        assert sorted(enqueue_due(now + 60)) == ["agents.sweep", "integrations.dispatch_due"]
        queued = {job.meta["task"] for name in ("agents", "webhooks", "default")
                  for job in get_queue(name).jobs}
        assert queued == {p.task for p in PERIODIC}


def test_the_periodic_tasks_run_without_a_tenant(app, acme):
    with app.app_context():
        enqueue_due(1_800_000_000.0)
    run_jobs(app, "agents", "webhooks", "default")
    with app.app_context():
        for name in ("agents", "webhooks", "default"):
            registry = get_queue(name).failed_job_registry
            assert registry.get_job_ids() == [], name
