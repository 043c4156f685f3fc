"""The worker entry point: ``python -m jobs.worker`` (or ``flask albedo worker``).

Builds the app once, then runs an RQ worker on the queues with the scheduler enabled (retries
with intervals and delayed jobs need it). Each job runs in a forked work horse, inside an app
context, in the tenant the job recorded (jobs.runner).
"""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import uuid

from rq import Worker
from rq.serializers import JSONSerializer

from jobs.periodic import start_ticker
from jobs.queues import ALL, get_queue
from jobs.registry import load_all


def run_worker(app, queues: list[str] | None = None, burst: bool = False,
               simple: bool = False) -> bool:
    from app.redis import get_redis

    with app.app_context():
        load_all()
        connection = get_redis()
        names = queues or list(ALL)
        worker_class = Worker
        if simple:  # no fork: one process, used by tests and on platforms without fork
            from rq import SimpleWorker

            worker_class = SimpleWorker
        worker = worker_class(
            [get_queue(n, connection) for n in names], connection=connection,
            serializer=JSONSerializer,
            name=f"albedo-{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
        level = app.extensions["albedo.settings"].log_level
        stop = threading.Event()
        if not burst:
            # Sweeps and reconciliation: enqueued once per slot however many workers run.
            start_ticker(app, stop)
        try:
            return worker.work(burst=burst, with_scheduler=True, logging_level=level)
        finally:
            stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="albedo-worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", "-q", action="append", choices=ALL,
                        help="a queue to listen on (repeatable); default: all")
    parser.add_argument("--burst", action="store_true",
                        help="exit once the queues are empty")
    args = parser.parse_args(argv)
    from app import create_app

    app = create_app()
    logging.getLogger(__name__).info("worker listening on %s", ", ".join(args.queue or ALL))
    run_worker(app, args.queue, burst=args.burst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
