"""Stripe webhook intake: verify, store once, route to the tenant, apply, in one transaction.

The StripeEvent row is inserted FIRST. Its unique Stripe id makes a replay (or the same
event arriving twice at once) fail on insert before any effect, and because the effects are
committed with that row, an event is either fully applied or not recorded at all (then
Stripe, or the reconciliation job, delivers it again).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.auth.models import User
from app.billing import notify
from app.billing.config import StripeConfig
from app.billing.connect import refresh_account
from app.billing.models import ConnectAccount, StripeEvent
from app.billing.stripe_client import client, on_account, plain
from app.billing.sync import (
    TENANT_KEY,
    apply_invoice,
    apply_subscription,
    from_timestamp,
    invoice_subscription_id,
    object_id,
    retrieve_invoice,
    retrieve_subscription,
    routing_metadata,
    user_from_metadata,
)
from app.billing.tenancy import acting_for
from app.errors import ApiError
from app.extensions import db
from tenants.context import TenantInfo, cross_tenant
from tenants.models import Tenant
from tenants.service import info_for

# Stripe's own default; we apply it in both directions (a far-future timestamp is as
# suspicious as an old one: it would let a captured request be replayed later).
TOLERANCE_SECONDS = 300
SUBSCRIPTION_EVENTS = frozenset({"customer.subscription.created",
                                 "customer.subscription.updated",
                                 "customer.subscription.deleted"})
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed",
                            "invoice.payment_action_required"})
HANDLED_EVENTS = SUBSCRIPTION_EVENTS | INVOICE_EVENTS | {"checkout.session.completed",
                                                         "account.updated"}


def _rejected(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _signed_at(header: str) -> int:
    """The t= of a Stripe-Signature header (already verified to parse by stripe)."""
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            return int(value)
    raise _rejected("invalid_signature", "The Stripe signature has no timestamp.")


def verify(payload: bytes, header: str | None, config: StripeConfig) -> dict[str, Any]:
    """The event, if ``header`` signs ``payload`` with one of our secrets, recently."""
    if not config.webhook_secrets:
        raise ApiError(409, "billing_not_configured",
                       "STRIPE_WEBHOOK_SECRETS is not set, so no webhook can be verified.")
    if not header:
        raise _rejected("missing_signature", "The Stripe-Signature header is missing.")
    for secret in config.webhook_secrets:
        try:
            # Stripe's own check of the v1 HMAC; tolerance is ours (both directions, our clock).
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
            break
        except stripe.SignatureVerificationError:
            continue
    else:
        raise _rejected("invalid_signature", "The Stripe signature does not match the body.")
    timestamp = _signed_at(header)
    if abs(clock.now().timestamp() - timestamp) > TOLERANCE_SECONDS:
        raise _rejected("signature_expired",
                        "The Stripe signature timestamp is outside the 300-second tolerance.")
    try:
        event = json.loads(payload)
    except ValueError:
        raise _rejected("malformed_event", "The webhook body is not JSON.") from None
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise _rejected("malformed_event", "The webhook body is not a Stripe event.")
    return event


# Two events about one new subscription applied at once both insert its row; the loser's
# unique violation means the row now exists, so the event is applied again from the top
# (its own event row included), and the second time it updates.
APPLY_TRIES = 3
# Stripe's API answering a permanent 4xx on the re-fetch (the object was deleted, or belongs
# elsewhere): redelivering cannot change that, so the event is recorded as handled, with the
# reason, and answered 2xx. 401 (our key) and 429 (Stripe's budget) are ours to fix or wait
# out, so they still fail the delivery and Stripe retries it.
_RETRYABLE_STRIPE_STATUSES = frozenset({401, 408, 409, 429})


def process_event(event: dict[str, Any], source: str = "webhook") -> str:
    """Store ``event`` once and apply it; returns the outcome ("duplicate" for a replay)."""
    for attempt in range(1, APPLY_TRIES + 1):
        try:
            return _process_once(event, source)
        except _LostInsertRace:
            if attempt == APPLY_TRIES:
                raise
    raise AssertionError("unreachable")


class _LostInsertRace(Exception):
    """A concurrent transaction inserted a row this event's effects also insert."""


def _process_once(event: dict[str, Any], source: str) -> str:
    # End any open read transaction first: on SQLite the insert must be the first statement
    # of its transaction, or a concurrent writer makes the upgrade to a write lock fail.
    db.session.rollback()
    row = StripeEvent(stripe_event_id=str(event["id"]), type=str(event["type"])[:100],
                      stripe_account_id=event.get("account"), outcome="received",
                      source=source, received_at=clock.now(),
                      stripe_created_at=from_timestamp(event.get("created")), payload=event)
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    try:
        try:
            outcome, tenant_id = _apply(event)
            note = None
        except stripe.StripeError as exc:
            status = getattr(exc, "http_status", None) or 0
            if not 400 <= status < 500 or status in _RETRYABLE_STRIPE_STATUSES:
                raise
            # Whatever the effects had begun is undone; the event row stays, as handled.
            code = getattr(exc, "code", None) or f"http_{status}"
            outcome, tenant_id = f"stripe_{code}"[:32], None
            note = f"Stripe answered {status} ({code}) on the re-fetch: {exc.user_message or exc}"
            db.session.rollback()
            db.session.add(row := StripeEvent(
                stripe_event_id=str(event["id"]), type=str(event["type"])[:100],
                stripe_account_id=event.get("account"), outcome="received", source=source,
                received_at=clock.now(), stripe_created_at=from_timestamp(event.get("created")),
                payload=event))
        row.outcome, row.tenant_id, row.note = outcome, tenant_id, note
        # The row now names its tenant: that write is the platform's routing, on a row that
        # row-level security gives to that tenant alone.
        with cross_tenant("record the tenant a Stripe event was routed to"):
            db.session.flush()
        db.session.commit()
    except Exception as exc:
        # Nothing is recorded: the event comes again and is applied then.
        db.session.rollback()
        if _caused_by_integrity_error(exc):
            raise _LostInsertRace() from exc
        raise
    return outcome


def _caused_by_integrity_error(exc: BaseException | None) -> bool:
    """An IntegrityError, or an error it caused (a rollback-pending session used while the
    tenant context unwound)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, IntegrityError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _connect_account(account: str) -> ConnectAccount | None:
    return db.session.scalars(
        select(ConnectAccount).where(ConnectAccount.stripe_account_id == account)
        .execution_options(cross_tenant="route a Connect event by its account")).first()


def _tenant_info(tenant_id: uuid.UUID) -> TenantInfo | None:
    tenant = db.session.get(Tenant, tenant_id)
    return info_for(tenant) if tenant is not None else None


def _route(metadata: dict[str, str], account: str | None) -> TenantInfo | None:
    """The tenant an event belongs to, or None to acknowledge and ignore it."""
    try:
        claimed = uuid.UUID(metadata[TENANT_KEY]) if metadata.get(TENANT_KEY) else None
    except ValueError:
        claimed = None
    if account:
        connected = _connect_account(account)
        if connected is None:
            return None
        # A connected account speaks only for its own reseller.
        if claimed is not None and claimed != connected.tenant_id:
            return None
        return _tenant_info(connected.tenant_id)
    return _tenant_info(claimed) if claimed is not None else None


def _fetch(event: dict[str, Any], account: str | None) -> tuple[Any, Any, Any]:
    """(subscription, invoice, routing source), all re-read from Stripe."""
    kind = event["type"]
    obj_id = object_id((event.get("data") or {}).get("object"))
    if not obj_id:
        return None, None, None
    if kind == "checkout.session.completed":
        session = plain(client().v1.checkout.sessions.retrieve(
            obj_id, options=on_account(account)))
        subscription_id = object_id(session.get("subscription"))
        if session.get("mode") != "subscription" or not subscription_id:
            return None, None, None
        subscription = retrieve_subscription(subscription_id, account)
        return subscription, None, subscription
    if kind in SUBSCRIPTION_EVENTS:
        subscription = retrieve_subscription(obj_id, account)
        return subscription, None, subscription
    invoice = retrieve_invoice(obj_id, account)
    subscription_id = invoice_subscription_id(invoice)
    subscription = retrieve_subscription(subscription_id, account) if subscription_id else None
    return subscription, invoice, subscription or invoice


def _apply(event: dict[str, Any]) -> tuple[str, uuid.UUID | None]:
    if event["type"] not in HANDLED_EVENTS:
        return "ignored_type", None
    account = event.get("account") or None
    connected = _connect_account(account) if account else None
    if account and connected is None:
        return "ignored_unknown_account", None
    if event["type"] == "account.updated":
        # A reseller's onboarding progressed: re-read its account (charges, payouts).
        tenant = _tenant_info(connected.tenant_id) if connected else None
        if tenant is None:
            return "ignored_unrouted", None
        with acting_for(tenant):
            refresh_account()
        return "processed", tenant.id
    if event["type"] == "checkout.session.completed":
        from app.billing.credits import apply_checkout_event

        credited = apply_checkout_event(event, account, connected)  # a credits top-up?
        if credited is not None:
            return credited
    subscription, invoice, source = _fetch(event, account)
    if source is None:
        return "ignored_not_subscription", None
    metadata = routing_metadata(source)
    tenant = _route(metadata, account)
    if tenant is None:
        return "ignored_unrouted", None
    with acting_for(tenant):
        user_id = user_from_metadata(metadata)
        if user_id is not None and db.session.get(User, user_id) is None:
            return "ignored_unknown_user", None
        if subscription is not None:
            apply_subscription(subscription, account, user_id)
        if invoice is not None:
            row = apply_invoice(invoice, account, user_id)
            notify.invoice_event(event["type"], row, user_id)
    return "processed", tenant.id

