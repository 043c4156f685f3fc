"""The billing API: /api/v1/billing/…"""

from __future__ import annotations

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
