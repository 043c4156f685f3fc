"""One delivery attempt: claim the row, sign, POST through the SSRF guard, record the attempt,
decide what happens next (done, retry later, give up, disable the endpoint).

Retries are rows, not sleeping jobs: a failed attempt writes ``next_attempt_at`` and a delayed
job is queued for then; the sweep (:func:`dispatch_due`) re-queues whatever is due in case a
job was lost. Both read the one clock, so tests drive the whole schedule with
``app.clock.set_clock``. The claim is a single conditional UPDATE, so however many copies of
a job run, an attempt is sent once.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy import and_, or_, select, update

from app import clock
from app.extensions import db
from app.integrations import events, signing
from app.integrations.models import RestHook, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.integrations.secrets import endpoint_secrets
from app.integrations.ssrf import SsrfBlocked, safe_request
from jobs.durable import EXHAUSTED, exhausted_message, redispatch
from jobs.enqueue import enqueue

log = logging.getLogger(__name__)

# Seconds to wait before attempt n+1 (index n-1 after attempt n): ≈ the schedule.
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(SCHEDULE)
JITTER = 0.1
MAX_RETRY_AFTER = timedelta(hours=24)  # a receiver cannot park a delivery forever
DISABLE_AFTER = timedelta(days=5)
LEASE = timedelta(seconds=60)  # longer than the request timeout
TIMEOUT_SECONDS = 15.0
EXCERPT_BYTES = 2048


def _due_clause(now: datetime):
    return or_(and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
               and_(WebhookDelivery.status == "sending", WebhookDelivery.lease_until < now))


def claim(delivery_id: uuid.UUID) -> WebhookDelivery | None:
    """Take the delivery for one attempt if it is due; None if another worker has it or it is
    not due (a duplicate or early job)."""
    now = clock.now()
    result = db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, _due_clause(now))
        .values(status="sending", lease_until=now + LEASE,
                attempt_count=WebhookDelivery.attempt_count + 1,
                run_attempts=WebhookDelivery.run_attempts + 1, dispatches=0)
        .execution_options(synchronize_session=False))
    db.session.commit()
    if result.rowcount != 1:
        return None
    return db.session.get(WebhookDelivery, delivery_id, populate_existing=True)


def retry_delay(run_attempts: int, retry_after: timedelta | None = None) -> timedelta | None:
    """How long to wait after failed attempt ``run_attempts`` (None: give up)."""
    if run_attempts >= MAX_ATTEMPTS:
        return None
    base = SCHEDULE[run_attempts]
    delay = timedelta(seconds=base * random.uniform(1 - JITTER, 1 + JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when - now, timedelta(0))


def _headers_for(delivery: WebhookDelivery, endpoint: WebhookEndpoint | None, timestamp: int,
                 body: bytes) -> dict[str, str]:
    if endpoint is not None:
        found = signing.headers(endpoint_secrets(endpoint), delivery.webhook_id, timestamp, body)
    else:
        # REST hooks (Zapier, n8n) share no secret: the unguessable target URL is the secret.
        found = {"webhook-id": delivery.webhook_id, "webhook-timestamp": str(timestamp),
                 "content-type": "application/json"}
    found["user-agent"] = "Webhooks/1.0"  # white-label: no platform name on the wire
    return found


def attempt(delivery_id: uuid.UUID) -> str:
    """Run one attempt of ``delivery_id`` (the tenant is in context). Returns the outcome."""
    delivery = claim(delivery_id)
    if delivery is None:
        return "not_due"
    event = delivery.event
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id) if delivery.endpoint_id \
        else None
    if delivery.endpoint_id is None and delivery.hook_id is None:
        return _finish(delivery, "cancelled", "the subscription was deleted")
    if endpoint is not None and not endpoint.enabled and not event.is_test:
        return _finish(delivery, "cancelled", "the endpoint is disabled")
    started = clock.now()
    body = events.body_bytes(event)
    headers = _headers_for(delivery, endpoint, int(started.timestamp()), body)
    record = WebhookAttempt(delivery_id=delivery.id, number=delivery.attempt_count,
                            started_at=started)
    db.session.add(record)
    # Commit before the network call: no transaction (or pooled connection) is held open
    # for up to 15 s, and the log shows the attempt as under way meanwhile.
    db.session.commit()
    try:
        response = safe_request("POST", delivery.url, content=body, headers=headers,
                                timeout=TIMEOUT_SECONDS, max_bytes=EXCERPT_BYTES)
    except SsrfBlocked as exc:
        # The URL itself is forbidden: retrying cannot help.
        record.error = f"blocked: {exc}"
        _note_failure(endpoint, started)
        return _finish(delivery, "failed", record.error)
    except (httpx.HTTPError, OSError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        return _retry_or_fail(delivery, endpoint, started, record.error, None)
    record.status_code = response.status_code
    record.latency_ms = response.elapsed_ms
    record.response_excerpt = response.text()[:EXCERPT_BYTES]
    delivery.last_status_code = response.status_code
    if 200 <= response.status_code < 300:
        record.succeeded = True
        delivery.delivered_at = clock.now()
        if endpoint is not None:
            endpoint.failing_since = None
        return _finish(delivery, "succeeded", None)
    error = f"HTTP {response.status_code}"
    if response.status_code == 410:
        _gone(delivery, endpoint)
        return _finish(delivery, "failed", f"{error}: the receiver is gone")
    retry_after = parse_retry_after(
        {k.lower(): v for k, v in response.headers.items()}.get("retry-after"), started)
    return _retry_or_fail(delivery, endpoint, started, error, retry_after)


def _finish(delivery: WebhookDelivery, status: str, error: str | None) -> str:
    delivery.status = status
    delivery.last_error = error
    delivery.lease_until = None
    delivery.next_attempt_at = None
    db.session.commit()
    return status


def _retry_or_fail(delivery: WebhookDelivery, endpoint: WebhookEndpoint | None,
                   now: datetime, error: str, retry_after: timedelta | None) -> str:
    disabled = _note_failure(endpoint, now)
    delay = None if disabled else retry_delay(delivery.run_attempts, retry_after)
    if delay is None:
        return _finish(delivery, "failed", error)
    delivery.status = "pending"
    delivery.last_error = error
    delivery.lease_until = None
    delivery.next_attempt_at = now + delay
    db.session.commit()
    enqueue(events.DELIVER_TASK, str(delivery.id),
            job_id=f"whd-{delivery.id.hex}-{delivery.attempt_count + 1}",
            delay_seconds=max(int(delay.total_seconds()), 1))
    return "retrying"


def _note_failure(endpoint: WebhookEndpoint | None, now: datetime) -> bool:
    """Count a failure against the endpoint; True when that disables it (5 days failing)."""
    if endpoint is None:
        return False
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        return False
    if endpoint.enabled and now - endpoint.failing_since >= DISABLE_AFTER:
        from app.integrations.service import disable_endpoint

        disable_endpoint(endpoint, "The endpoint failed every delivery for 5 days.")
        return True
    return False


def _gone(delivery: WebhookDelivery, endpoint: WebhookEndpoint | None) -> None:
    """410 Gone: the receiver asks us to stop, at once."""
    if endpoint is not None:
        from app.integrations.service import disable_endpoint

        disable_endpoint(endpoint, "The endpoint answered 410 Gone.")
        return
    hook = db.session.get(RestHook, delivery.hook_id)
    if hook is not None:
        # REST hooks: a 410 is how Zapier says the Zap was turned off; drop the subscription.
        db.session.execute(update(WebhookDelivery).where(
            WebhookDelivery.hook_id == hook.id, WebhookDelivery.status == "pending")
            .values(status="cancelled", next_attempt_at=None,
                    last_error="the subscription was deleted after a 410")
            .execution_options(synchronize_session=False))
        delivery.hook_id = None
        db.session.delete(hook)


def dispatch_due(limit: int = 1000) -> int:
    """Queue every due delivery of every tenant (the sweep). Returns how many were queued."""
    return recover_due(limit)["dispatched"]


def recover_due(limit: int = 1000) -> dict[str, int]:
    """The deliveries' part of the recovery sweep (jobs/durable.py): every due delivery
    without a live job is dispatched again, counted on its row; one sending past its lease
    after its last attempt (the worker died during it), or whose jobs were lost
    ALBEDO_MAX_DISPATCHES times in a row, ends failed with the reason."""
    from tenants.service import acting_as

    now = clock.now()
    rows = db.session.execute(
        select(WebhookDelivery.id, WebhookDelivery.tenant_id)
        .where(_due_clause(now))
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)
        .execution_options(cross_tenant="the webhook sweep queues due deliveries of every "
                                        "tenant, each job then runs inside its own tenant")
    ).all()
    db.session.rollback()
    outcome = {"dispatched": 0, "failed": 0, "skipped": 0}
    for delivery_id, tenant_id in rows:
        with acting_as(tenant_id) as found:
            if found:
                outcome[_recover_one(delivery_id, tenant_id, now)] += 1
    return outcome


def _recover_one(delivery_id: uuid.UUID, tenant_id: uuid.UUID, now: datetime) -> str:
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        db.session.rollback()
        return "skipped"
    seen = (WebhookDelivery.status == delivery.status,
            WebhookDelivery.attempt_count == delivery.attempt_count,
            WebhookDelivery.dispatches == delivery.dispatches)
    if delivery.status == "sending" and delivery.run_attempts >= MAX_ATTEMPTS:
        # Its last attempt never reported back: claiming it again would be attempt n + 1.
        return _give_up(delivery_id, seen, "the worker stopped during the last attempt; "
                        "its outcome is unknown")
    dispatches, attempts = delivery.dispatches, delivery.attempt_count
    db.session.rollback()
    result = redispatch(WebhookDelivery, delivery_id, dispatches, events.DELIVER_TASK,
                        str(delivery_id), tenant_id=tenant_id,
                        job_id=f"whd-{delivery_id.hex}-{attempts + 1}", still=seen[:2])
    if result != "exhausted":
        return result
    return _give_up(delivery_id, seen, f"{EXHAUSTED}: {exhausted_message(dispatches)}")


def _give_up(delivery_id: uuid.UUID, seen: tuple, reason: str) -> str:
    failed = db.session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, *seen)
        .values(status="failed", last_error=reason, lease_until=None, next_attempt_at=None)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return "failed" if failed else "skipped"
