"""REST hooks (https://resthooks.org/) as Zapier and n8n use them: subscribe a target URL to
one event type, unsubscribe, and list recent real items so a Zap can be built from data.

Deliveries to hooks go through the same delivery rows and jobs as endpoints; a 410 from the
target deletes the subscription (app.integrations.delivery).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from app.errors import ApiError
from app.extensions import db
from app.integrations.catalogue import EVENTS
from app.integrations.events import payload
from app.integrations.models import RestHook, WebhookEvent
from app.integrations.service import Actor, _parse_id, check_url

MAX_SAMPLES = 10


def _check_event(event: str) -> str:
    if event not in EVENTS:
        raise ApiError(422, "unknown_event_type", f"There is no event type {event!r}.",
                       details={"known": sorted(EVENTS)})
    return event


def subscribe(actor: Actor, target_url: str, event: str,
              api_key_id: uuid.UUID | None = None) -> RestHook:
    hook = RestHook(event_type=_check_event(event), target_url=check_url(target_url),
                    user_id=actor.user_id, tenant_wide=actor.tenant_wide,
                    api_key_id=api_key_id)
    db.session.add(hook)
    db.session.flush()
    return hook


def hooks_query(actor: Actor):
    stmt = select(RestHook)
    if not actor.tenant_wide:
        stmt = stmt.where(RestHook.user_id == actor.user_id)
    return stmt


def unsubscribe(actor: Actor, hook_id: str) -> None:
    key = _parse_id(hook_id, "hook_", "subscription")
    hook = db.session.scalars(hooks_query(actor).where(RestHook.id == key)).first()
    if hook is None:
        raise ApiError(404, "not_found", "No subscription has this id.")
    db.session.delete(hook)
    db.session.flush()


def samples(actor: Actor, event: str, limit: int = 3) -> list[dict[str, Any]]:
    """The newest real events of this type the actor may see, newest first (Zapier's
    performList). Never test events; ids are the event ids, so they are unique."""
    _check_event(event)
    stmt = select(WebhookEvent).where(WebhookEvent.type == event,
                                      WebhookEvent.is_test.is_(False))
    if not actor.tenant_wide:
        stmt = stmt.where(WebhookEvent.owner_user_id == actor.user_id)
    rows = db.session.scalars(stmt.order_by(WebhookEvent.created_at.desc(),
                                            WebhookEvent.id.desc())
                              .limit(max(1, min(limit, MAX_SAMPLES)))).all()
    return [payload(e) for e in rows]
