"""The billing API: /api/v1/billing/…"""

from __future__ import annotations

import json

import click
from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.limits import stripe_webhook_limit
from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth.guard import require
from app.auth.models import User
from app.billing import checkout, connect, service
from app.billing.config import require_stripe
from app.billing.models import Invoice
from app.billing.plans import create_plan, get_plan, list_plans, update_plan
from app.billing.schemas import (
    BillingStateSchema,
    CheckoutRequestSchema,
    ConnectStatusSchema,
    InvoiceSchema,
    PlanCreateSchema,
    PlanSchema,
    PlanUpdateSchema,
    RedirectSchema,
    WebhookAckSchema,
)
from app.billing.webhooks import process_event, verify
from app.errors import ApiError
from app.extensions import db

blp = Blueprint("billing", __name__, description="Plans, subscriptions, invoices, Connect")


@blp.route("/stripe/webhook")
class StripeWebhook(MethodView):
    # Its own generous budget instead of the shared per-IP and per-tenant ones (app/api/limits).
    decorators = [stripe_webhook_limit()]

    @blp.response(200, WebhookAckSchema)
    def post(self):
        """Receive a Stripe event (public; authenticated by the Stripe-Signature header).

        The signature is checked over the raw body against every configured secret, with a
        300-second tolerance either way; anything else answers 400 and stores nothing. Each
        event is applied once: a replay answers 200 with outcome `duplicate`. Events for an
        unknown connected account are acknowledged and ignored.
        """
        signature = request.headers.get("Stripe-Signature")
        if not signature:  # unsigned is malformed whatever the configuration
            raise ApiError(400, "missing_signature", "The Stripe-Signature header is missing.")
        config = require_stripe()
        event = verify(request.get_data(cache=False),
                       signature, config)
        return {"received": True, "event_id": event["id"], "outcome": process_event(event)}


@blp.route("/plans")
class Plans(MethodView):
    @blp.response(200, PlanSchema(many=True))
    @require("billing:read")
    def get(self):
        """The plans this tenant sells (to its customers; the platform's to resellers)."""
        return list_plans()

    @blp.arguments(PlanCreateSchema)
    @blp.response(201, PlanSchema)
    @require("billing:write", roles=("RESELLER", "ADMIN"))
    def post(self, body):
        """Add a plan to what this tenant sells (a reseller's to its customers; on the
        platform domain, the platform's to resellers). Limits left null are unlimited;
        the one default plan (no Stripe price) is what non-subscribers get. 422 `invalid_plan`.
        """
        code, name = body.pop("code"), body.pop("name")
        plan = create_plan(code, name, **body)
        db.session.commit()
        return plan


@blp.route("/plans/<uuid:plan_id>")
class PlanItem(MethodView):
    @blp.arguments(PlanUpdateSchema)
    @blp.response(200, PlanSchema)
    @require("billing:write", roles=("RESELLER", "ADMIN"))
    def patch(self, body, plan_id):
        """Change a plan's name, limits (null: unlimited) or make it the default (the
        previous default stops being one). Audited. 404 for another tenant's plan."""
        plan = update_plan(get_plan(plan_id), body)
        db.session.commit()
        return plan


@blp.route("/subscription")
class CurrentSubscription(MethodView):
    @blp.response(200, BillingStateSchema)
    @require("billing:read", roles=("RESELLER", "USER"))
    def get(self):
        """The caller's plan limits and subscription, as Stripe last reported it.

        A customer sees its own; a reseller sees its tenant's subscription to the platform.
        """
        principal = g.principal
        return service.billing_state(service.subject_of(principal.role, principal.user_id))


@blp.route("/checkout")
class Checkout(MethodView):
    @blp.arguments(CheckoutRequestSchema)
    @blp.response(201, RedirectSchema)
    @require("billing:write", roles=("RESELLER", "USER"))
    def post(self, body):
        """Start a Stripe Checkout session (subscription mode) for a plan; returns its URL.

        Customers buy their reseller's plans (paid to the reseller's connected account);
        resellers buy the platform's plans. 409 `billing_not_configured` without Stripe,
        409 `already_subscribed`, 409 `reseller_not_connected`.
        """
        principal = g.principal
        subject = service.subject_of(principal.role, principal.user_id)
        user = db.session.get(User, principal.user_id)
        started = checkout.start_checkout(body["plan_id"], subject,
                                          user.email if user else None)
        return {"url": started.url, "session_id": started.session_id}


@blp.route("/portal")
class Portal(MethodView):
    @blp.response(201, RedirectSchema)
    @require("billing:write", roles=("RESELLER", "USER"))
    def post(self):
        """Open Stripe's billing portal to change plan, card or cancel; returns its URL."""
        principal = g.principal
        return {"url": checkout.start_portal(
            service.subject_of(principal.role, principal.user_id))}


@blp.route("/invoices")
class Invoices(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, page_of(InvoiceSchema))
    @require("billing:read", roles=("RESELLER", "USER"))
    def get(self, args):
        """Invoices synced from Stripe, newest first (cursor pagination)."""
        principal = g.principal
        return paginate(service.invoices_stmt(principal.role, principal.user_id),
                        cursor=args["cursor"], limit=args["limit"],
                        order_by=(Invoice.created_at, Invoice.id))


def _connect_status() -> dict:
    row = connect.connect_account()
    return {"connected": row is not None,
            "stripe_account_id": row.stripe_account_id if row else None,
            "charges_enabled": bool(row and row.charges_enabled),
            "payouts_enabled": bool(row and row.payouts_enabled),
            "details_submitted": bool(row and row.details_submitted)}


@blp.route("/connect")
class ConnectOnboarding(MethodView):
    @blp.response(200, ConnectStatusSchema)
    @require("billing:read", roles=("RESELLER",))
    def get(self):
        """The reseller's connected Stripe account: can it take payments and get payouts?"""
        return _connect_status()

    @blp.response(201, RedirectSchema)
    @require("billing:write", roles=("RESELLER",))
    def post(self):
        """Start (or resume) Stripe's hosted onboarding for the reseller's own account."""
        url = connect.start_onboarding()
        db.session.commit()
        return {"url": url}


@blp.cli.command("reconcile")
@click.option("--enqueue", is_flag=True, help="Queue the job for a worker instead of running.")
@click.option("--since-hours", default=72, show_default=True, type=int)
def reconcile_command(enqueue: bool, since_hours: int) -> None:
    """Replay missed Stripe events and re-sync subscriptions (schedule it from cron)."""
    if enqueue:
        from jobs.enqueue import enqueue as enqueue_job

        job = enqueue_job("billing.reconcile", since_hours, tenant_id=None)
        click.echo(f"queued {job.id}")
        return
    from app.billing.reconcile import reconcile

    click.echo(json.dumps(reconcile(since_hours)))
