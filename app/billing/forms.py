"""The page form for adding a plan (the API takes the same fields as JSON)."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, ValidationError
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.billing.models import PLAN_INTERVALS
from app.billing.money import parse_money
from app.billing.plans import LIMIT_FIELDS
from app.errors import ApiError


def _limit(label: str) -> IntegerField:
    return IntegerField(f"{label} (empty = unlimited)",
                        validators=[Optional(), NumberRange(min=0, message="0 or more")])


class PlanForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    code = StringField("Code (empty: made from the name)", validators=[Optional(), Length(max=40)])
    stripe_price_id = StringField("Stripe price id (price_…; empty for the default plan)",
                                  validators=[Optional(), Length(max=255)])
    interval = SelectField("Billing interval", choices=list(PLAN_INTERVALS), default="month")
    price = StringField("Price per interval, as shown to buyers (e.g. 19.00)",
                        validators=[Optional(), Length(max=20)])
    currency = StringField("Currency", default="usd", validators=[DataRequired(), Length(max=3)])
    executions_per_month = _limit("Executions per month")
    agents = _limit("Agents")
    customers = _limit("Customers")
    licenses = _limit("Licenses")
    api_keys = _limit("API keys")
    features = StringField("Features (comma-separated)", validators=[Length(max=500)])
    is_default = BooleanField("Default plan: what accounts without a subscription get "
                              "(free, no Stripe price)")

    def validate_price(self, field) -> None:
        if field.data:
            try:
                parse_money(field.data, self.currency.data or "usd")
            except ValueError as exc:
                raise ValidationError(str(exc)) from None

    def plan_args(self) -> dict[str, Any]:
        """Keyword arguments for ``plans.create_plan``."""
        name = self.name.data.strip()
        code = (self.code.data or "").strip() or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        return {
            "code": code[:40], "name": name,
            "stripe_price_id": (self.stripe_price_id.data or "").strip() or None,
            "interval": self.interval.data,
            "amount_minor": parse_money(self.price.data, self.currency.data)
            if self.price.data else 0,
            "currency": self.currency.data, "is_default": self.is_default.data,
            "features": [f.strip() for f in (self.features.data or "").split(",") if f.strip()],
            **{limit: getattr(self, limit).data for limit in LIMIT_FIELDS},
        }

    def show(self, error: ApiError) -> None:
        """The service's per-field problems next to the fields (the rest above the form)."""
        for name, message in error.details.get("fields", {}).items():
            field = getattr(self, "price" if name == "amount_minor" else name, None)
            target = field if field is not None else self.name
            target.errors = [*target.errors, message]
