"""Validation counts, last-validated times and the validation log, kept off the hot path.

A validation records itself in the same Redis script that takes its rate budgets (see
``hotpath``: counter, last time, log entry, flush flag); a job
(``licensing.flush_validations``) later moves them onto the license rows and the
``license_validations`` table in one transaction per tenant. The first validation after a
flush schedules the next one (a ``SET NX`` flag whose lifetime equals the job's delay), so
an idle tenant costs nothing and a busy one is flushed every ``FLUSH_DELAY`` seconds.

Executions per period (``USAGE_EXCEEDED``) live in Redis only: an atomic INCR per
(license, period window) that expires with its window.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime

from app.redis import get_redis

log = logging.getLogger(__name__)

FLUSH_DELAY = 10
LOG_CAP = 50_000  # the log buffer never grows past this while the worker is down


def keys_for(tenant_id: uuid.UUID) -> dict[str, str]:
    base = f"albedo:lic:{tenant_id}"
    return {"counts": f"{base}:counts", "last": f"{base}:last", "log": f"{base}:log",
            "flag": f"{base}:flush-scheduled"}


def log_entry(license_id: uuid.UUID | None, code: str, fingerprint: str | None,
              ip: str | None, now: datetime) -> str:
    """One validation as the log buffer keeps it (the flush job writes it to a row)."""
    return json.dumps({"l": str(license_id) if license_id else None, "c": code,
                       "f": (fingerprint or None) and fingerprint[:255], "ip": ip,
                       "t": now.isoformat()})


def schedule_flush(tenant_id: uuid.UUID) -> None:
    """Enqueue the flush job (the caller won the flush flag). Never raises."""
    try:
        import app.licensing.tasks  # noqa: F401  (registers the task: no import of them all)
        from jobs.enqueue import enqueue

        enqueue("licensing.flush_validations", tenant_id=tenant_id, delay_seconds=FLUSH_DELAY)
    except Exception:
        log.warning("could not schedule the validation flush", exc_info=True)


def drain(tenant_id: uuid.UUID, batch_id: str) -> tuple[dict[str, int], dict[str, str], list]:
    """Take everything recorded so far, atomically (later validations go to fresh keys).

    The taken data is parked under ``batch_id`` until :func:`forget_batch`, so a job that
    dies between drain and commit finds it again on retry (same job id, same batch).
    """
    keys = keys_for(tenant_id)
    redis = get_redis()
    parked = {name: f"{keys[name]}:batch:{batch_id}" for name in ("counts", "last", "log")}
    if not redis.exists(*parked.values()):  # not a retry: park what was recorded so far
        present = [name for name in parked if redis.exists(keys[name])]
        pipe = redis.pipeline(transaction=True)
        for name in present:
            pipe.rename(keys[name], parked[name])
        pipe.execute()
    counts = {k.decode(): int(v) for k, v in redis.hgetall(parked["counts"]).items()}
    last = {k.decode(): v.decode() for k, v in redis.hgetall(parked["last"]).items()}
    entries = [json.loads(raw) for raw in redis.lrange(parked["log"], 0, -1)]
    return counts, last, entries


def forget_batch(tenant_id: uuid.UUID, batch_id: str) -> None:
    keys = keys_for(tenant_id)
    get_redis().delete(*(f"{keys[n]}:batch:{batch_id}" for n in ("counts", "last", "log")))


def _usage_key(license_id: uuid.UUID, period: int, now: datetime) -> tuple[str, int]:
    window = int(now.timestamp()) // period
    return f"albedo:lic-usage:{license_id}:{period}:{window}", (window + 1) * period


def record_execution(license_id: uuid.UUID, period: int, now: datetime, count: int = 1) -> int:
    """Count executions in the current period window; returns the window's total."""
    key, window_end = _usage_key(license_id, period, now)
    pipe = get_redis().pipeline(transaction=True)
    pipe.incrby(key, count)
    pipe.expireat(key, window_end + 60)
    return int(pipe.execute()[0])


def executions_used(license_id: uuid.UUID, period: int, now: datetime) -> int:
    key, _ = _usage_key(license_id, period, now)
    return int(get_redis().get(key) or 0)
