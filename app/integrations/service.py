"""Endpoints and deliveries as their owners manage them: create, change, rotate the secret,
disable, send a test event, replay. No Flask request objects here: the API and the pages
pass an :class:`Actor`.

Ownership inside a tenant: a customer (USER) sees and manages only their own endpoints and
what was delivered to them; the reseller's team (RESELLER, or ADMIN on the platform tenant)
sees the whole tenant and creates reseller-level endpoints, which receive every event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import Select, or_, select

from app import clock
from app.email.service import send_email
from app.errors import ApiError
from app.extensions import db
from app.integrations import events, signing
from app.integrations.catalogue import EVENTS, TEST_EVENT
from app.integrations.models import RestHook, WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.integrations.secrets import current_secret, seal
from app.integrations.ssrf import SsrfBlocked, resolve_checked
from tenants.context import current

DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user or the user behind an API key."""

    user_id: uuid.UUID
    role: str

    @property
    def tenant_wide(self) -> bool:
        return self.role in ("RESELLER", "ADMIN")


def _parse_id(value: str | uuid.UUID, prefix: str, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    raw = value[len(prefix):] if value.startswith(prefix) else value
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(404, "not_found", f"No {what} has this id.") from None


def check_url(url: str) -> str:
    """A receiver URL must be http(s) and resolve to public addresses only (the same guard
    runs again on every delivery, since DNS can change)."""
    url = (url or "").strip()
    if len(url) > 2048:
        raise ApiError(422, "invalid_url", "The URL is longer than 2048 characters.")
    try:
        resolve_checked(url)
    except SsrfBlocked as exc:
        raise ApiError(422, "url_not_allowed", f"This URL cannot receive webhooks: {exc}.",
                       details={"url": url}) from None
    return url


def check_event_types(names: list[str] | None) -> list[str]:
    names = sorted(set(names or []))
    unknown = [n for n in names if n not in EVENTS]
    if unknown:
        raise ApiError(422, "unknown_event_type", "Some event types do not exist.",
                       details={"unknown": unknown, "known": sorted(EVENTS)})
    return names


# --- endpoints -------------------------------------------------------------------------------

def endpoints_query(actor: Actor) -> Select:
    stmt = select(WebhookEndpoint)
    if not actor.tenant_wide:
        stmt = stmt.where(WebhookEndpoint.owner_user_id == actor.user_id)
    return stmt


def get_endpoint(actor: Actor, endpoint_id: str | uuid.UUID) -> WebhookEndpoint:
    key = _parse_id(endpoint_id, "ep_", "webhook endpoint")
    endpoint = db.session.scalars(endpoints_query(actor).where(WebhookEndpoint.id == key)).first()
    if endpoint is None:
        raise ApiError(404, "not_found", "No webhook endpoint has this id.")
    return endpoint


def create_endpoint(actor: Actor, url: str, event_types: list[str] | None = None,
                    description: str = "") -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (shown once here; it can be revealed again later)."""
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        url=check_url(url), event_types=check_event_types(event_types),
        description=(description or "")[:255],
        owner_user_id=None if actor.tenant_wide else actor.user_id,
        created_by_user_id=actor.user_id, secret_encrypted=seal(secret), enabled=True)
    db.session.add(endpoint)
    db.session.flush()
    return endpoint, secret


def update_endpoint(endpoint: WebhookEndpoint, *, url: str | None = None,
                    event_types: list[str] | None = None, description: str | None = None,
                    enabled: bool | None = None) -> WebhookEndpoint:
    if url is not None:
        endpoint.url = check_url(url)
    if event_types is not None:
        endpoint.event_types = check_event_types(event_types)
    if description is not None:
        endpoint.description = description[:255]
    if enabled is True and not endpoint.enabled:
        # A fresh start: the 5-day failure window counts from the next failure.
        endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = True, None, None
        endpoint.failing_since = None
    elif enabled is False and endpoint.enabled:
        endpoint.enabled, endpoint.disabled_reason = False, "Disabled by a user."
        endpoint.disabled_at = clock.now()
    db.session.flush()
    return endpoint


def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    db.session.delete(endpoint)
    db.session.flush()


def reveal_secret(endpoint: WebhookEndpoint) -> str:
    return current_secret(endpoint)


def rotate_secret(endpoint: WebhookEndpoint,
                  overlap: timedelta = DEFAULT_OVERLAP) -> str:
    """A new secret signs from now on; the old one keeps signing as a second signature
    until the overlap ends, so receivers can switch without dropping a delivery."""
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ApiError(422, "invalid_overlap", "The overlap must be between 0 and 7 days.")
    secret = signing.new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted if overlap else None
    endpoint.previous_secret_expires_at = clock.now() + overlap if overlap else None
    endpoint.secret_encrypted = seal(secret)
    db.session.flush()
    return secret


def disable_endpoint(endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop delivering to ``endpoint`` and tell its owner why (called from delivery jobs)."""
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = clock.now()
    recipient = _owner_email(endpoint)
    if recipient:
        send_email(recipient, "webhook_endpoint_disabled",
                   {"endpoint_url": endpoint.url, "reason": reason,
                    "endpoint_id": endpoint.public_id})


def _owner_email(endpoint: WebhookEndpoint) -> str | None:
    from app.auth.models import User

    for user_id in (endpoint.owner_user_id, endpoint.created_by_user_id):
        if user_id:
            user = db.session.get(User, user_id)
            if user is not None and user.is_active:
                return user.email
    return current().support_email


def send_test_event(endpoint: WebhookEndpoint) -> WebhookDelivery:
    event = WebhookEvent(type=TEST_EVENT.name, version=TEST_EVENT.version, is_test=True,
                         data={**TEST_EVENT.example, "endpoint_id": endpoint.public_id},
                         owner_user_id=endpoint.owner_user_id, created_at=clock.now())
    db.session.add(event)
    db.session.flush()
    return events._owe(event, url=endpoint.url, endpoint_id=endpoint.id)


# --- deliveries ------------------------------------------------------------------------------

def deliveries_query(actor: Actor, endpoint_id: str | None = None,
                     status: str | None = None) -> Select:
    stmt = select(WebhookDelivery)
    if not actor.tenant_wide:
        mine_endpoints = select(WebhookEndpoint.id).where(
            WebhookEndpoint.owner_user_id == actor.user_id)
        mine_hooks = select(RestHook.id).where(RestHook.user_id == actor.user_id)
        stmt = stmt.where(or_(WebhookDelivery.endpoint_id.in_(mine_endpoints),
                              WebhookDelivery.hook_id.in_(mine_hooks)))
    if endpoint_id:
        stmt = stmt.where(WebhookDelivery.endpoint_id == get_endpoint(actor, endpoint_id).id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    return stmt


def get_delivery(actor: Actor, delivery_id: str | uuid.UUID) -> WebhookDelivery:
    key = _parse_id(delivery_id, "msg_", "delivery")
    delivery = db.session.scalars(
        deliveries_query(actor).where(WebhookDelivery.id == key)).first()
    if delivery is None:
        raise ApiError(404, "not_found", "No delivery has this id.")
    return delivery


def replay(delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, with a fresh retry schedule and the same webhook-id (it is
    the same message; receivers that de-duplicate will see it as such)."""
    if delivery.status in ("pending", "sending"):
        raise ApiError(409, "delivery_in_progress",
                       "This delivery is still being attempted; wait for it to finish.")
    if delivery.endpoint_id is None and (
            delivery.hook_id is None or db.session.get(RestHook, delivery.hook_id) is None):
        raise ApiError(409, "receiver_gone", "The subscription this went to no longer exists.")
    if delivery.endpoint_id is not None:
        endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            raise ApiError(409, "endpoint_disabled", "Enable the endpoint before replaying.")
    delivery.status, delivery.run_attempts, delivery.dispatches = "pending", 0, 0
    delivery.next_attempt_at, delivery.last_error = clock.now(), None
    from app.auth import audit

    # A REST hook's URL is its subscriber's capability: its host only.
    audit.record("webhook_delivery_replayed", **audit.acting(), target_type="webhook_delivery",
                 target_id=delivery.id, event_type=delivery.event.type,
                 url=delivery.url if delivery.endpoint_id else urlsplit(delivery.url).hostname)
    db.session.flush()
    events.schedule(delivery)
    return delivery
