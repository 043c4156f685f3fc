"""What the worker actually executes for every job: restore the tenant, run the task,
classify the failure (transient → RQ retries with backoff; anything else → failed now).

A worker process runs many jobs one after another (jobs.worker), so each job runs in its own
copy of the worker's context (contextvars) with its own app context and database session:
whatever a job sets — a tenant, a cross-tenant opt-in — ends with it, and the next job starts
from the worker's clean state, in exactly the tenant it recorded (or none).
"""

from __future__ import annotations

import contextvars
import logging
import os
import uuid
from contextlib import nullcontext
from typing import Any

import redis
from flask import current_app
from rq import get_current_job
from sqlalchemy.exc import OperationalError

from jobs import periodic
from jobs.registry import PermanentError, TransientError, get_task
from tenants.context import NoTenantError, activate, set_current

log = logging.getLogger(__name__)
TRANSIENT = (TransientError, OperationalError, ConnectionError, TimeoutError,
             redis.ConnectionError, redis.TimeoutError)
_engine_pid: int | None = None


def _fresh_connections_after_fork() -> None:
    """A forked work horse (``--fork``) must not reuse the parent's database sockets."""
    global _engine_pid
    from app.extensions import db

    if _engine_pid != os.getpid():
        db.engine.dispose(close=False)
        _engine_pid = os.getpid()


def _no_retry() -> None:
    job = get_current_job()
    if job is not None:
        job.retries_left = 0


_app = None


def _application():
    """The app the worker pushed (jobs.worker), or one built here under a plain `rq worker`."""
    global _app
    try:
        return current_app._get_current_object()
    except RuntimeError:
        if _app is None:
            from app import create_app

            _app = create_app()
        return _app


def run(task_name: str, tenant_id: str | None, args: list[Any], kwargs: dict[str, Any]) -> Any:
    # A copy of the worker's context: it still holds RQ's current job (tasks read their
    # retries), and nothing the job sets in it survives the job.
    return contextvars.copy_context().run(_run, _application(), task_name, tenant_id, args,
                                          kwargs)


def _run(app, task_name: str, tenant_id: str | None, args: list[Any],
         kwargs: dict[str, Any]) -> Any:
    set_current(None)  # whatever the caller's context held, a job starts from its own tenant
    with app.app_context():
        _fresh_connections_after_fork()
        from app.extensions import db
        from tenants.web import resolver

        try:
            task = get_task(task_name)
            tenant = None
            if tenant_id:
                # The snapshot requests use, from the same cache (its TTL, and invalidated
                # through Redis when a tenant changes): a query per job cost a transaction.
                tenant = resolver().by_id(uuid.UUID(tenant_id))
                if tenant is None:
                    raise PermanentError(f"tenant {tenant_id} no longer exists")
            elif task.tenant_scoped:
                raise NoTenantError(f"task {task_name!r} is tenant-scoped and the job has "
                                    "no tenant; refusing to run it")
            if task_name in periodic.NAMES:
                return _run_periodic(task, args, kwargs)
            with activate(tenant) if tenant else nullcontext():
                return task.func(*args, **kwargs)
        except TRANSIENT:
            log.warning("job %s failed transiently; RQ retries it if it has tries left",
                        task_name, exc_info=True)
            raise
        except Exception:
            log.exception("job %s failed permanently", task_name)
            _no_retry()
            raise
        finally:
            db.session.remove()


def _run_periodic(task, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """A periodic task's run, with its start and outcome written on its row."""
    periodic.note_run(task.name, "running")
    try:
        result = task.func(*args, **kwargs)
    except Exception as exc:
        periodic.note_run(task.name, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        raise
    periodic.note_run(task.name, "done")
    return result
