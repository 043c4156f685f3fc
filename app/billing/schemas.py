"""Marshmallow schemas of the billing API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class WebhookAckSchema(Schema):
    received = fields.Boolean(required=True)
    event_id = fields.String(required=True)
    outcome = fields.String(required=True,
                            metadata={"description": "processed, duplicate or ignored_…"})


class _LimitFields(Schema):
    """Quotas; null means unlimited."""

    executions_per_month = fields.Integer(allow_none=True)
    agents = fields.Integer(allow_none=True)
    customers = fields.Integer(allow_none=True)
    licenses = fields.Integer(allow_none=True)
    api_keys = fields.Integer(allow_none=True)
    features = fields.List(fields.String(), required=True)


class PlanSchema(_LimitFields):
    id = fields.UUID(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    interval = fields.String(required=True)
    amount_minor = fields.Integer(required=True, metadata={"description": "Minor units."})
    currency = fields.String(required=True)
    is_default = fields.Boolean(required=True)


class LimitsSchema(_LimitFields):
    plan_id = fields.UUID(allow_none=True)
    plan_name = fields.String(required=True)


class SubscriptionSchema(Schema):
    id = fields.UUID(required=True)
    status = fields.String(required=True)
    stripe_price_id = fields.String(allow_none=True)
    current_period_end = fields.DateTime(allow_none=True)
    cancel_at_period_end = fields.Boolean(required=True)
    canceled_at = fields.DateTime(allow_none=True)


class BillingStateSchema(Schema):
    billing_configured = fields.Boolean(required=True)
    limits = fields.Nested(LimitsSchema, required=True)
    subscription = fields.Nested(SubscriptionSchema, allow_none=True)


class CheckoutRequestSchema(Schema):
    plan_id = fields.UUID(required=True)


class RedirectSchema(Schema):
    url = fields.String(required=True, metadata={"description": "Send the browser here."})
    session_id = fields.String()


class InvoiceSchema(Schema):
    id = fields.UUID(required=True)
    number = fields.String(allow_none=True)
    status = fields.String(required=True)
    amount_due = fields.Integer(required=True, metadata={"description": "Minor units."})
    amount_paid = fields.Integer(required=True, metadata={"description": "Minor units."})
    currency = fields.String(required=True)
    hosted_invoice_url = fields.String(allow_none=True)
    invoice_pdf = fields.String(allow_none=True)
    issued_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime(required=True)


class ConnectStatusSchema(Schema):
    connected = fields.Boolean(required=True)
    stripe_account_id = fields.String(allow_none=True)
    charges_enabled = fields.Boolean(required=True)
    payouts_enabled = fields.Boolean(required=True)
    details_submitted = fields.Boolean(required=True)


_LIMIT = validate.Range(min=0, max=2_147_483_647)


class PlanUpdateSchema(Schema):
    """What PATCH /plans/{id} may change (prices live in Stripe; codes are permanent)."""

    name = fields.String(validate=validate.Length(min=1, max=120))
    executions_per_month = fields.Integer(allow_none=True, validate=_LIMIT)
    agents = fields.Integer(allow_none=True, validate=_LIMIT)
    customers = fields.Integer(allow_none=True, validate=_LIMIT)
    licenses = fields.Integer(allow_none=True, validate=_LIMIT)
    api_keys = fields.Integer(allow_none=True, validate=_LIMIT)
    is_default = fields.Boolean()


class PlanCreateSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    stripe_price_id = fields.String(load_default=None, allow_none=True)
    interval = fields.String(load_default="month")
    # The column's range here; below 0 is refused by the service with the other fields.
    amount_minor = fields.Integer(load_default=0, validate=validate.Range(-(2**31), 2**31 - 1))
    currency = fields.String(load_default="usd")
    executions_per_month = fields.Integer(load_default=None, allow_none=True,
                                          validate=validate.Range(-(2**31), 2**31 - 1))
    agents = fields.Integer(load_default=None, allow_none=True,
                            validate=validate.Range(-(2**31), 2**31 - 1))
    customers = fields.Integer(load_default=None, allow_none=True,
                               validate=validate.Range(-(2**31), 2**31 - 1))
    licenses = fields.Integer(load_default=None, allow_none=True,
                              validate=validate.Range(-(2**31), 2**31 - 1))
    api_keys = fields.Integer(load_default=None, allow_none=True,
                              validate=validate.Range(-(2**31), 2**31 - 1))
    features = fields.List(fields.String(), load_default=list)
    is_default = fields.Boolean(load_default=False)
