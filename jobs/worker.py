"""The worker entry point: ``python -m jobs.worker`` (or ``flask albedo worker``).

Builds the app once, then runs an RQ worker on the queues with the scheduler enabled (retries
with intervals and delayed jobs need it). Jobs run one after another in the worker process
itself, which keeps what is costly to set up warm across jobs: the app, the ORM's configured
mappers, database and Redis connections, the agents' provider clients. A fork per job
(``--fork``, RQ's classic work horse) threw all of that away for every job and cost most of an
agent execution's overhead (bench/execution_pipeline.py). Each job still runs in its own
context, app context and session, in the tenant it recorded (jobs.runner), and a run that dies
with its worker is resolved by the agents sweeper (jobs.periodic) whichever class runs it.
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import time
import uuid

from redis.client import Pipeline
from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import WorkerStatus

from jobs.periodic import start_ticker
from jobs.queues import ALL, get_queue
from jobs.registry import load_all

# A heartbeat within this many seconds of one that promised at least as long adds nothing.
HEARTBEAT_EVERY = 1.0


class _LeanBookkeeping:
    """RQ's per-job bookkeeping without the round trips that change nothing.

    Around every job RQ's loop beats three times (before and after waiting for a job, and
    after the job), each beat three separate Redis round trips, sets the worker IDLE twice,
    and beats the job once more after it ends. A worker's cycle is serial, so every round trip
    lengthens it (and on a busy machine each one waits for the CPU to come back). Here:

    * a beat is one pipelined round trip, and one that follows a beat of at least the same
      TTL within HEARTBEAT_EVERY is skipped (the key then expires at most that much earlier
      than a fresh beat would make it, far inside the TTL);
    * an unchanged state is not written again, and the IDLE after a job goes out with the beat
      that follows it (RQ's loop beats right after; a pending state is never skipped);
    * the job's beat after it ends, which keeps it in the started registry while success or
      failure callbacks run, is left out for jobs that have none (ours never do).
    """

    _beat: tuple[float, int] = (float("-inf"), 0)  # (monotonic time, TTL) of the last beat
    _pending_state: str | None = None

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        timeout = timeout or self.worker_ttl + 60
        at = time.monotonic()
        if pipeline is not None:  # part of a bigger round trip RQ makes anyway
            self._beat_in(pipeline, timeout)
        else:
            last_at, last_ttl = self._beat
            if (self._pending_state is None and at - last_at < HEARTBEAT_EVERY
                    and last_ttl >= timeout):
                return
            with self.connection.pipeline(transaction=False) as pipe:
                self._beat_in(pipe, timeout)
                pipe.execute()
        self._beat = (at, timeout)

    def _beat_in(self, pipeline: Pipeline, timeout: int) -> None:
        if self._pending_state is not None:
            super().set_state(self._pending_state, pipeline=pipeline)
            self._pending_state = None
        super().heartbeat(timeout, pipeline=pipeline)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and state == self._state:
            return
        if pipeline is None and state == WorkerStatus.IDLE:
            self._state, self._pending_state = state, state  # sent with the next beat
            return
        self._pending_state = None  # superseded
        super().set_state(state, pipeline=pipeline)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        if job.success_callback or job.failure_callback or job.stopped_callback:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
        else:
            job.ended_at = now()


class AlbedoWorker(_LeanBookkeeping, SimpleWorker):
    """Runs jobs in this process (see the module's docstring)."""


class AlbedoForkWorker(_LeanBookkeeping, Worker):
    """Runs each job in a forked work horse (``--fork``)."""


def run_worker(app, queues: list[str] | None = None, burst: bool = False,
               simple: bool = True) -> bool:
    """Work on ``queues`` (default: all) until stopped, or until they are empty (``burst``).

    ``simple=False`` runs each job in a forked work horse instead of in this process. Either
    way this must run in the main thread: RQ's job timeout is a SIGALRM.
    """
    from sqlalchemy.orm import configure_mappers

    from app.redis import get_redis

    with app.app_context():
        load_all()
        # Once, before the first job (and before any fork, so work horses inherit it): left
        # to the first query, every forked horse configured every mapper again.
        configure_mappers()
        connection = get_redis()
        names = queues or list(ALL)
        worker = (AlbedoWorker if simple else AlbedoForkWorker)(
            [get_queue(n, connection) for n in names], connection=connection,
            serializer=JSONSerializer,
            name=f"albedo-{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
        level = app.extensions["albedo.settings"].log_level
        stop = threading.Event()
        if not burst:
            # Sweeps and reconciliation: enqueued once per slot however many workers run.
            # and RQ's scheduler duty, taken over as soon as a dead holder's lock lapses.
            start_ticker(app, stop, worker)
        try:
            return worker.work(burst=burst, with_scheduler=True, logging_level=level)
        finally:
            stop.set()
            scheduler = worker.scheduler
            if scheduler is not None and not (scheduler._process
                                              and scheduler._process.is_alive()):
                try:  # locks the ticker took for this worker: free them for the next one
                    scheduler.release_locks()
                except Exception:
                    logging.getLogger(__name__).warning("could not release the scheduler "
                                                        "lock", exc_info=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="albedo-worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", "-q", action="append", choices=ALL,
                        help="a queue to listen on (repeatable); default: all")
    parser.add_argument("--burst", action="store_true",
                        help="exit once the queues are empty")
    parser.add_argument("--fork", action="store_true",
                        help="run each job in a forked work horse (slower: nothing stays warm)")
    args = parser.parse_args(argv)
    from app import create_app

    app = create_app()
    logging.getLogger(__name__).info("worker listening on %s", ", ".join(args.queue or ALL))
    run_worker(app, args.queue, burst=args.burst, simple=not args.fork)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
