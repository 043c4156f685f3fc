"""The worker's lean RQ bookkeeping (jobs.worker): fewer round trips, the same state in Redis."""

from __future__ import annotations

from rq import Callback
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from jobs.queues import get_queue
from jobs.worker import AlbedoWorker


def _worker(app):
    with app.app_context():
        queue = get_queue("default")
        return AlbedoWorker([queue], connection=queue.connection, serializer=JSONSerializer,
                            name="albedo-test-worker"), queue


def _state(redis_client, worker) -> bytes | None:
    return redis_client.hget(worker.key, "state")


def test_the_idle_after_a_job_goes_out_with_the_next_beat_and_is_never_skipped(app,
                                                                             redis_client):
    worker, _ = _worker(app)
    worker.set_state(WorkerStatus.BUSY)
    worker.heartbeat()
    assert _state(redis_client, worker) == b"busy"
    worker.set_state(WorkerStatus.IDLE)  # held for the beat RQ's loop makes next
    assert _state(redis_client, worker) == b"busy"
    worker.heartbeat()  # within HEARTBEAT_EVERY of the last beat, yet sent: a state waits
    assert _state(redis_client, worker) == b"idle"
    assert redis_client.ttl(worker.key) > worker.worker_ttl


def test_a_beat_soon_after_an_equal_one_is_skipped_a_longer_one_is_not(app, redis_client,
                                                                       monkeypatch):
    import jobs.worker

    monkeypatch.setattr(jobs.worker, "HEARTBEAT_EVERY", 3600.0)  # "soon", whatever the load
    worker, _ = _worker(app)
    worker.heartbeat(100)
    redis_client.persist(worker.key)  # so a beat that goes out shows as a TTL again
    worker.heartbeat(100)
    assert redis_client.ttl(worker.key) == -1  # skipped: it would change nothing
    worker.heartbeat(500)
    assert redis_client.ttl(worker.key) > 100  # a longer promise is always sent


def test_a_job_is_beaten_after_it_ends_only_when_it_has_callbacks(app, redis_client):
    worker, queue = _worker(app)
    with app.app_context():
        plain = queue.enqueue("jobs.runner.run", args=("diagnostics.whoami", None, [], {}))
        called = queue.enqueue("jobs.runner.run", args=("diagnostics.whoami", None, [], {}),
                               on_success=Callback("jobs.diagnostics.whoami"))
    for job in (plain, called):
        worker.handle_execution_ended(job, queue, 60)
        assert job.ended_at is not None
    fetched = {job.id: Job.fetch(job.id, connection=redis_client, serializer=JSONSerializer)
               for job in (plain, called)}
    assert fetched[plain.id].last_heartbeat is None
    assert fetched[called.id].last_heartbeat is not None
