"""Marshmallow schemas of the rebilling API (prices, ledger, spending, credits, reports)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.pagination import CursorArgsSchema

INT32 = 2_147_483_647
BIGINT = 9_223_372_036_854_775_807
# Money columns are BigInteger (amounts are kept in millionths of a minor unit), so these
# integers are 64-bit in the document too; tests/test_api_bounds.py holds them to that.
MINOR = {"description": "Integer minor units of the book's currency (cents; yen for JPY).",
         "format": "int64"}
MICRO = {"description": "Integer micro-minor units: millionths of a minor unit (exact; "
                        "totals are rounded once, see docs/rebilling.md)."}
PERIOD = validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="a month, YYYY-MM")


class PriceBookSchema(Schema):
    currency = fields.String(required=True, metadata={
        "description": "Stripe's lowercase currency code; zero-decimal ones (jpy, krw…) "
                       "have no minor unit."})
    usd_rate_ppm = fields.Integer(required=True, metadata={
        "description": "Units of the currency one US dollar buys, in millionths (for markup "
                       "prices on the provider's cost)."})
    meter_event_name = fields.String(allow_none=True)
    stripe_meter_id = fields.String(allow_none=True)


class PriceBookUpdateSchema(Schema):
    currency = fields.String(validate=validate.Length(equal=3))
    usd_rate_ppm = fields.Integer(validate=validate.Range(1, 10**15), metadata={"format": "int64"})
    meter_event_name = fields.String(validate=validate.Length(max=100))
    stripe_meter_id = fields.String(validate=validate.Length(max=255))


class PriceSchema(Schema):
    id = fields.UUID(required=True)
    audience = fields.String(required=True, metadata={
        "description": "`all`, or `reseller:<id>` for a wholesale price of one reseller."})
    selector = fields.String(required=True)
    agent_id = fields.UUID(allow_none=True)
    model = fields.String(allow_none=True)
    kind = fields.String(required=True)
    input_per_million_minor = fields.Integer(allow_none=True, metadata=MINOR)
    output_per_million_minor = fields.Integer(allow_none=True, metadata=MINOR)
    per_execution_minor = fields.Integer(allow_none=True, metadata=MINOR)
    markup_bp = fields.Integer(allow_none=True, metadata={
        "description": "Basis points of the provider's cost: 10000 = at cost, 15000 = +50 %."})


class PricesSchema(Schema):
    book = fields.Nested(PriceBookSchema, required=True)
    items = fields.List(fields.Nested(PriceSchema), required=True)


class PriceSetSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(("tokens", "execution",
                                                                 "markup")))
    agent_id = fields.UUID(load_default=None)
    model = fields.String(load_default=None, validate=validate.Length(1, 100))
    reseller_id = fields.UUID(load_default=None, metadata={
        "description": "Platform only: a wholesale price for this reseller."})
    input_per_million_minor = fields.Integer(load_default=None,
                                             validate=validate.Range(0, INT32), metadata=MINOR)
    output_per_million_minor = fields.Integer(load_default=None,
                                              validate=validate.Range(0, INT32), metadata=MINOR)
    per_execution_minor = fields.Integer(load_default=None, validate=validate.Range(0, INT32),
                                         metadata=MINOR)
    markup_bp = fields.Integer(load_default=None, validate=validate.Range(0, 1_000_000))


class LedgerArgsSchema(CursorArgsSchema):
    customer_id = fields.UUID(load_default=None)
    agent_id = fields.UUID(load_default=None)
    period = fields.String(load_default=None, validate=PERIOD)
    kind = fields.String(load_default=None, validate=validate.OneOf(("charge", "reversal")))
    since = fields.AwareDateTime(load_default=None)
    until = fields.AwareDateTime(load_default=None)


class LedgerEntrySchema(Schema):
    """A customer sees the first group of fields only; a reseller sees them all."""

    id = fields.UUID(required=True)
    kind = fields.String(required=True)
    reverses_id = fields.UUID(allow_none=True)
    execution_id = fields.UUID(required=True)
    agent_id = fields.UUID(required=True)
    channel = fields.String(required=True, metadata={
        "description": "api, openai, sandbox, widget or license"})
    credential_kind = fields.String(required=True, metadata={
        "description": "api_key, license, widget_key or session"})
    credential_id = fields.UUID(allow_none=True)
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    amount_micro = fields.Integer(required=True, metadata=MICRO)
    included_micro = fields.Integer(required=True, metadata=MICRO)
    credits_micro = fields.Integer(required=True, metadata=MICRO)
    billable_micro = fields.Integer(required=True, metadata=MICRO)
    currency = fields.String(required=True)
    period = fields.String(required=True)
    occurred_at = fields.DateTime(required=True)
    customer_id = fields.UUID()
    version_number = fields.Integer()
    model = fields.String()
    provider_cost_micro = fields.Integer(metadata={"description": "Micro-minor US dollars."})
    wholesale_micro = fields.Integer(metadata=MICRO)
    wholesale_currency = fields.String()
    margin_micro = fields.Integer(allow_none=True, metadata=MICRO)
    reason = fields.String(allow_none=True)


class ReversalSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 1000))


class SpendingSchema(Schema):
    user_id = fields.UUID(required=True)
    currency = fields.String(required=True)
    period = fields.String(required=True)
    spent = fields.Integer(required=True, metadata=MINOR)
    included = fields.Integer(required=True, metadata=MINOR)
    billable = fields.Integer(required=True, metadata=MINOR)
    spending_limit = fields.Integer(allow_none=True, metadata=MINOR)
    limit_mode = fields.String(required=True)
    credits_enabled = fields.Boolean(required=True)
    credit_balance = fields.Integer(required=True, metadata=MINOR)
    auto_topup_below = fields.Integer(allow_none=True, metadata=MINOR)
    auto_topup_amount = fields.Integer(allow_none=True, metadata=MINOR)


class SpendingUpdateSchema(Schema):
    spending_limit = fields.Integer(allow_none=True, validate=validate.Range(0, 10**12),
                                    metadata=MINOR)
    limit_mode = fields.String(validate=validate.OneOf(("soft", "hard")))
    credits_enabled = fields.Boolean()
    auto_topup_below = fields.Integer(allow_none=True, validate=validate.Range(0, 10**12),
                                      metadata=MINOR)
    auto_topup_amount = fields.Integer(allow_none=True, validate=validate.Range(1, 10**12),
                                       metadata=MINOR)


class CreditGrantSchema(Schema):
    amount = fields.Integer(required=True, validate=validate.Range(1, 10**12), metadata=MINOR)


class TopUpSchema(Schema):
    amount = fields.Integer(required=True, validate=validate.Range(1, 10**8), metadata=MINOR)


class MarginArgsSchema(Schema):
    group_by = fields.String(load_default="customer",
                             validate=validate.OneOf(("customer", "agent", "day")))
    period = fields.String(load_default=None, validate=PERIOD)


class MarginRowSchema(Schema):
    key = fields.String(required=True)
    currency = fields.String(required=True)
    wholesale_currency = fields.String(required=True)
    entries = fields.Integer(required=True)
    revenue_micro = fields.Integer(required=True, metadata=MICRO)
    provider_cost_micro = fields.Integer(required=True)
    wholesale_micro = fields.Integer(required=True, metadata=MICRO)
    margin_micro = fields.Integer(allow_none=True, metadata=MICRO)


class MarginsSchema(Schema):
    group_by = fields.String(required=True)
    items = fields.List(fields.Nested(MarginRowSchema), required=True)


class PlanUsageSchema(Schema):
    plan_id = fields.UUID(dump_only=True)
    included_minor = fields.Integer(required=True, validate=validate.Range(0, 10**12),
                                    metadata={"description": "Usage included each month, in "
                                                             "minor units of the book.",
                                              "format": "int64"})
    overage_bp = fields.Integer(load_default=10_000, validate=validate.Range(0, 1_000_000),
                                metadata={"description": "Usage past it, in basis points of "
                                                         "its list price."})
