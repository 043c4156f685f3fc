"""Reconciliation: what webhooks may have missed, fetched from Stripe.

Webhooks can be lost (an outage on our side outlives Stripe's retries), so a scheduled job
replays recent events that were never stored (Stripe's Events list, on the platform account
and every connected account) through the same exactly-once path, then re-reads every live
subscription.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import stripe
from sqlalchemy import select

from app import clock
from app.billing.config import stripe_config
from app.billing.models import ConnectAccount, StripeEvent, Subscription
from app.billing.stripe_client import client, on_account, plain
from app.billing.sync import sync_subscription
from app.billing.webhooks import HANDLED_EVENTS, process_event
from app.extensions import db
from tenants.context import activate
from tenants.models import Tenant
from tenants.service import info_for

log = logging.getLogger(__name__)
FINAL_STATUSES = ("canceled", "incomplete_expired")


def _connected_accounts() -> list[str]:
    return list(db.session.scalars(
        select(ConnectAccount.stripe_account_id)
        .execution_options(cross_tenant="reconciliation visits every connected account")))


def replay_missed_events(since: timedelta) -> dict[str, int]:
    after = int((clock.now() - since).timestamp())
    counts = {"seen": 0, "replayed": 0}
    for account in [None, *_connected_accounts()]:
        events = client().v1.events.list(
            {"created": {"gte": after}, "types": sorted(HANDLED_EVENTS), "limit": 100},
            options=on_account(account))
        for remote in events.auto_paging_iter():
            event: dict[str, Any] = plain(remote)
            if account:
                event.setdefault("account", account)
            counts["seen"] += 1
            known = db.session.scalars(select(StripeEvent.id).where(
                StripeEvent.stripe_event_id == event["id"]).execution_options(
                cross_tenant="was this event received, whichever tenant it went to")).first()
            if known is None and process_event(event, source="reconcile") != "duplicate":
                counts["replayed"] += 1
    db.session.rollback()
    return counts


def resync_subscriptions() -> dict[str, int]:
    rows = db.session.execute(
        select(Subscription.tenant_id, Subscription.stripe_subscription_id,
               Subscription.stripe_account_id, Subscription.user_id)
        .where(Subscription.status.not_in(FINAL_STATUSES))
        .execution_options(cross_tenant="reconciliation re-reads every live subscription")
    ).all()
    db.session.rollback()
    counts = {"synced": 0, "failed": 0}
    for tenant_id, subscription_id, account, user_id in rows:
        tenant = db.session.get(Tenant, tenant_id)
        if tenant is None:
            continue
        with activate(info_for(tenant)):
            try:
                sync_subscription(subscription_id, account, user_id)
                db.session.commit()
                counts["synced"] += 1
            except stripe.StripeError:
                db.session.rollback()
                counts["failed"] += 1
                log.warning("could not re-sync subscription %s", subscription_id,
                            exc_info=True)
    return counts


def reconcile(since_hours: int = 72) -> dict[str, Any]:
    if stripe_config() is None:
        return {"status": "billing_not_configured"}
    events = replay_missed_events(timedelta(hours=since_hours))
    subscriptions = resync_subscriptions()
    return {"status": "done", **events, **subscriptions}
