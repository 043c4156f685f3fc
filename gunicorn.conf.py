"""The production server configuration: the Dockerfile, docker-compose and `make serve` use it.

gunicorn's gevent worker: every connection is a greenlet, so an open stream (an execution's
Server-Sent Events, the OpenAI-compatible stream, a widget chat) costs a greenlet and an entry
in the process's stream hub (app/streamhub.py), not an OS thread. The drivers cooperate once
the worker has monkey-patched the standard library: redis-py talks through the patched socket
module, and psycopg 3 (3.1.14 and later) detects gevent and waits through it.

Settings (the server's own, not the app's; command-line flags override them):

* ``PORT`` (8000): the port bound on all interfaces.
* ``WEB_CONCURRENCY`` (the CPU count, at least 2): worker processes.
* ``GUNICORN_WORKER_CONNECTIONS`` (2000): open connections per worker; streams count.

Nothing from the app is imported at the top: this file is read before the worker patches
the standard library, and an early import would hold unpatched sockets and locks.
"""

import os


def _positive(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"{name} must be a positive integer, not {raw!r}")
    return int(raw)


wsgi_app = "wsgi:app"
bind = [f"0.0.0.0:{_positive('PORT', 8000)}"]
worker_class = "gevent"
workers = _positive("WEB_CONCURRENCY", max(os.cpu_count() or 1, 2))
worker_connections = _positive("GUNICORN_WORKER_CONNECTIONS", 2000)
# The gevent worker reports to the arbiter from its own loop, so a long stream never looks
# like a hung worker; 30 s only catches a worker that stopped scheduling altogether.
timeout = 30
# On SIGTERM the stream hub ends every open stream within a second (clients reconnect
# elsewhere with Last-Event-ID), so the graceful wait is for ordinary requests only.
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# gunicorn 23+ opens a control socket in the user's home by default: one shared path that
# every server on the machine would fight over, for a feature nothing here uses.
control_socket_disable = True
forwarded_allow_ips = "127.0.0.1"  # the app's own ALBEDO_PROXY_COUNT decides the rest


def post_worker_init(worker) -> None:
    # After the patching and the app's loading: the hub ends streams when the worker stops.
    from app import streamhub

    streamhub.watch_worker(lambda: worker.alive)
    ready = os.environ.get("BENCH_READY_DIR")
    if ready:  # benchmarks start measuring once every worker has loaded the app
        open(os.path.join(ready, str(worker.pid)), "w").close()


def child_exit(server, worker) -> None:
    # /metrics in multiprocess mode (app/ops/metrics.py): a worker that died, killed or not,
    # must drop its live gauges. Only prometheus_client is imported here, never the app, so
    # the master stays free of what gevent patches in the workers.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, directory)
