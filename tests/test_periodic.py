"""Periodic work is enqueued once per slot, however many workers tick, and runs cleanly."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rq.job import Job

from app.extensions import db
from jobs.enqueue import enqueue
from jobs.periodic import PERIODIC, enqueue_due
from jobs.queues import get_queue
from tenants import activate
from tests.agents_support import wait_until
from tests.jobs_helpers import run_jobs

ROOT = Path(__file__).resolve().parent.parent


def test_each_slot_is_enqueued_once_and_the_next_slot_again(app, redis_client):
    now = 1_800_000_000.0  # a multiple of 15, 300 and 900: every slot starts here
    with app.app_context():
        first = enqueue_due(now)
        assert sorted(first) == sorted(p.task for p in PERIODIC)
        assert enqueue_due(now) == []  # a second worker ticking in the same slot
        assert enqueue_due(now + 1) == []
        assert enqueue_due(now + 15) == ["jobs.recover"]  # ALBEDO_RECOVERY_SECONDS
        assert sorted(enqueue_due(now + 300)) == ["billing.report_usage", "jobs.recover",
                                                  "licensing.announce_expiries"]
        queued = {job.meta["task"] for name in ("agents", "webhooks", "default")
                  for job in get_queue(name).jobs}
        assert queued == {p.task for p in PERIODIC}
        # The schedule is the database's: Redis losing everything forgets no slot.
        redis_client.flushdb()
        assert enqueue_due(now + 301) == []
        assert enqueue_due(now + 315) == ["jobs.recover"]


def test_a_slot_whose_enqueue_failed_is_tried_again_at_the_next_tick(app, monkeypatch):
    import jobs.periodic
    from jobs.models import PeriodicRun

    def redis_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    now = 1_800_000_000.0
    with app.app_context():
        monkeypatch.setattr(jobs.periodic, "enqueue", redis_down)
        with pytest.raises(ConnectionError):
            enqueue_due(now)
        assert db.session.get(PeriodicRun, "jobs.recover") is None  # not claimed
        monkeypatch.undo()
        assert "jobs.recover" in enqueue_due(now + 1)


def test_the_periodic_tasks_run_without_a_tenant(app, acme):
    with app.app_context():
        enqueue_due(1_800_000_000.0)
    run_jobs(app, "agents", "webhooks", "default")
    with app.app_context():
        for name in ("agents", "webhooks", "default"):
            registry = get_queue(name).failed_job_registry
            assert registry.get_job_ids() == [], name


def test_a_running_worker_ticks_and_runs_the_periodic_tasks_after_tenant_jobs(
        app, acme, test_environ, settings):
    """The real worker (jobs run in its process) starts the ticker; the periodic tasks run
    there, in the same process after a tenant's job, and succeed (tenant isolation between
    consecutive jobs: tests/test_jobs.py)."""
    from app.redis import redis_url

    with app.app_context(), activate(acme.info):
        tenant_job = enqueue("diagnostics.whoami")
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobs.worker", "-q", "agents", "-q", "webhooks", "-q", "default"],
        cwd=ROOT, env={**test_environ, "REDIS_URL": redis_url(settings)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def periodic_done() -> set[str]:
            with app.app_context():
                done = {Job.fetch(job_id, connection=queue.connection,
                                  serializer=queue.serializer).meta["task"]
                        for queue in map(get_queue, ("agents", "webhooks", "default"))
                        for job_id in queue.finished_job_registry.get_job_ids()}
                return done >= {p.task for p in PERIODIC} and done

        done = wait_until(periodic_done, timeout=60, what="the periodic tasks to run")
    finally:
        worker.send_signal(signal.SIGTERM)  # a warm shutdown
        _, errors = worker.communicate(timeout=30)
    assert done == {p.task for p in PERIODIC} | {"diagnostics.whoami"}, errors[-2000:]
    with app.app_context():
        tenant_job.refresh()
        assert tenant_job.return_value()["tenant_slug"] == "acme"
        for name in ("agents", "webhooks", "default"):
            assert get_queue(name).failed_job_registry.get_job_ids() == [], name
        from jobs.models import PeriodicRun

        runs = {r.task: r for r in db.session.query(PeriodicRun)}
        assert set(runs) == {p.task for p in PERIODIC}
        assert all(r.last_outcome == "done" and r.runs >= 1 for r in runs.values()), runs
    assert worker.returncode == 0, errors[-2000:]
