"""The one way domain code announces something: :func:`emit`.

The event is written in the caller's transaction (no commit here), together with one delivery
row per matching endpoint and REST hook; the delivery jobs are enqueued only after that
commit. So an event exists if and only if the change it describes was committed, and a
receiver that is down only delays its deliveries (they wait in the database, not in Redis).
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select

from app import clock
from app.extensions import db
from app.integrations.catalogue import EVENTS, TEST_EVENT, event_type
from app.integrations.models import RestHook, WebhookDelivery, WebhookEndpoint, WebhookEvent
from jobs.enqueue import enqueue_after_commit
from tenants.context import current

DELIVER_TASK = "integrations.deliver"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON: pass plain values in event data")


def normalise(data: dict[str, Any]) -> dict[str, Any]:
    """Event data as it will be stored and sent: plain JSON (ids and datetimes as strings)."""
    return json.loads(json.dumps(data, default=_jsonable))


def payload(event: WebhookEvent) -> dict[str, Any]:
    """The body every receiver gets, and the item the REST-hook samples list."""
    return {"id": event.public_id, "type": event.type, "version": event.version,
            "timestamp": _jsonable(event.created_at), "data": event.data}


def body_bytes(event: WebhookEvent) -> bytes:
    # Compact and stable: the signature covers these exact bytes.
    return json.dumps(payload(event), separators=(",", ":"), sort_keys=True).encode()


class Recipients:
    """Who may be owed events of some types for one owner, read ahead of a transaction's
    first write (``recipients``) for events that may or may not be emitted after it."""

    def __init__(self, owner: uuid.UUID | None, types: tuple[str, ...]) -> None:
        self.owner, self.types = owner, types
        self.endpoints = _matching_endpoints(owner, types)
        self.hooks = _matching_hooks(owner, types)

    def of(self, event: WebhookEvent) -> tuple[list[WebhookEndpoint], list[RestHook]]:
        if event.type not in self.types or event.owner_user_id != self.owner:
            raise ValueError(f"{event.type} was not read ahead for this owner")
        return ([e for e in self.endpoints if not e.event_types or event.type in e.event_types],
                [h for h in self.hooks if h.event_type == event.type])


def recipients(types: tuple[str, ...], *,
               owner_user_id: uuid.UUID | str | None = None) -> Recipients:
    """Read now who is owed events of ``types`` concerning ``owner_user_id`` (two queries,
    whatever the number of types); pass it to :func:`emit` later in the transaction."""
    return Recipients(uuid.UUID(str(owner_user_id)) if owner_user_id else None, tuple(types))


def emit(event_type_name: str, data: dict[str, Any], *,
         owner_user_id: uuid.UUID | str | None = None,
         ahead: Recipients | None = None) -> WebhookEvent:
    """Record ``event_type_name`` with ``data`` for the current tenant and owe it to every
    matching endpoint and hook. Call it inside the transaction that makes the change; the
    caller commits. ``owner_user_id``: the customer the event concerns (their own endpoints
    and hooks receive it; reseller-level ones receive every event of the tenant).
    ``ahead``: who is owed it, read before the transaction's first write (``recipients``)."""
    kind = event_type(event_type_name)
    if kind is TEST_EVENT:
        raise ValueError("test events are sent with send_test_event(), not emitted")
    missing = [key for key in kind.required if key not in data]
    if missing:
        raise ValueError(f"{event_type_name} data lacks {', '.join(missing)}")
    current()  # fail now, with a clear error, outside a tenant
    owner = uuid.UUID(str(owner_user_id)) if owner_user_id else None
    event = WebhookEvent(type=kind.name, version=kind.version, data=normalise(data),
                         owner_user_id=owner, created_at=clock.now())
    # Who is owed it is read before the event is written: on SQLite the first write of a
    # transaction holds the database's one write lock until the commit, and every other
    # writer (a worker claiming or finishing a run) waits for it meanwhile.
    endpoints, hooks = (ahead.of(event) if ahead is not None
                        else (_matching_endpoints(event.owner_user_id, (event.type,)),
                              _matching_hooks(event.owner_user_id, (event.type,))))
    db.session.add(event)
    db.session.flush()
    for endpoint in endpoints:
        _owe(event, url=endpoint.url, endpoint_id=endpoint.id)
    for hook in hooks:
        _owe(event, url=hook.target_url, hook_id=hook.id)
    return event


def _matching_endpoints(owner: uuid.UUID | None, types: tuple[str, ...]
                        ) -> list[WebhookEndpoint]:
    audience = WebhookEndpoint.owner_user_id.is_(None)
    if owner:
        audience = or_(audience, WebhookEndpoint.owner_user_id == owner)
    rows = db.session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.enabled.is_(True), audience)).all()
    # The filter is a short JSON list; checking it here keeps the query portable.
    return [e for e in rows if not e.event_types or any(t in e.event_types for t in types)]


def _matching_hooks(owner: uuid.UUID | None, types: tuple[str, ...]) -> list[RestHook]:
    audience = RestHook.tenant_wide.is_(True)
    if owner:
        audience = or_(audience, RestHook.user_id == owner)
    return list(db.session.scalars(select(RestHook).where(
        RestHook.event_type.in_(types), audience)).all())


def _owe(event: WebhookEvent, *, url: str, endpoint_id: uuid.UUID | None = None,
         hook_id: uuid.UUID | None = None) -> WebhookDelivery:
    delivery = WebhookDelivery(event_id=event.id, endpoint_id=endpoint_id, hook_id=hook_id,
                               url=url, status="pending", next_attempt_at=event.created_at)
    db.session.add(delivery)
    db.session.flush()
    schedule(delivery)
    return delivery


def schedule(delivery: WebhookDelivery) -> None:
    """Enqueue the delivery's next attempt once the transaction commits.

    The job id names the attempt, so enqueueing the same attempt twice (emit, then the sweep)
    is harmless; the claim in the job is what guarantees a single send.
    """
    enqueue_after_commit(db.session, DELIVER_TASK, str(delivery.id),
                         job_id=f"whd-{delivery.id.hex}-{delivery.attempt_count + 1}")


def is_subscribable(name: str) -> bool:
    return name in EVENTS
