"""The billing API: /api/v1/billing/…"""

from __future__ import annotations

import json

import click
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from app.billing.config import require_stripe
from app.billing.schemas import WebhookAckSchema
from app.billing.webhooks import process_event, verify

blp = Blueprint("billing", __name__, description="Plans, subscriptions, invoices, Connect")


@blp.route("/stripe/webhook")
class StripeWebhook(MethodView):
    @blp.response(200, WebhookAckSchema)
    def post(self):
        """Receive a Stripe event (public; authenticated by the Stripe-Signature header).

        The signature is checked over the raw body against every configured secret, with a
        300-second tolerance either way; anything else answers 400 and stores nothing. Each
        event is applied once: a replay answers 200 with outcome `duplicate`. Events for an
        unknown connected account are acknowledged and ignored.
        """
        config = require_stripe()
        event = verify(request.get_data(cache=False),
                       request.headers.get("Stripe-Signature"), config)
        return {"received": True, "event_id": event["id"], "outcome": process_event(event)}


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
