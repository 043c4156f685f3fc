"""Billing configuration, read from ``settings.extra`` and validated at start.

Stripe (STRIPE_* variables) is optional: with no STRIPE_SECRET_KEY every account is on the
free plan and the billing endpoints answer ``409 billing_not_configured`` (a 4xx: the request
cannot succeed until an operator configures Stripe, and retrying will not help); they never
fake success.

The built-in free plan (what an account gets when neither a subscription nor its seller's
default plan says otherwise) is ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS (100, shared with the
agents' quota), ALBEDO_FREE_PLAN_AGENTS (1), ALBEDO_FREE_PLAN_CUSTOMERS (3),
ALBEDO_FREE_PLAN_LICENSES (3) and ALBEDO_FREE_PLAN_API_KEYS (1): whole numbers, 0 or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from flask import current_app

from app.errors import ApiError


class BillingConfigError(ValueError):
    """STRIPE_* variables are present but describe a configuration that cannot work."""


@dataclass(frozen=True)
class StripeConfig:
    secret_key: str
    # Newest first; every one is accepted so a secret can be rolled without losing events.
    webhook_secrets: tuple[str, ...]
    # Only set for tests and local stand-ins; the client's default is api.stripe.com.
    api_base: str | None
    # The platform's cut of a reseller's customer payments (Connect application fee).
    application_fee_percent: Decimal
    max_network_retries: int = 2

    @classmethod
    def from_extra(cls, extra: dict[str, str]) -> StripeConfig | None:
        secret_key = (extra.get("STRIPE_SECRET_KEY") or "").strip()
        if not secret_key:
            return None
        problems: list[str] = []
        if not secret_key.startswith(("sk_", "rk_")):
            problems.append("STRIPE_SECRET_KEY must be a secret key (sk_… or rk_…)")
        secrets = tuple(s.strip() for s in (extra.get("STRIPE_WEBHOOK_SECRETS") or "").split(",")
                        if s.strip())
        for secret in secrets:
            if not secret.startswith("whsec_"):
                problems.append("STRIPE_WEBHOOK_SECRETS entries must start with whsec_")
                break
        raw_fee = (extra.get("STRIPE_APPLICATION_FEE_PERCENT") or "0").strip()
        try:
            fee = Decimal(raw_fee)
        except InvalidOperation:
            fee = Decimal(-1)
        if not (Decimal(0) <= fee <= Decimal(100)):
            problems.append("STRIPE_APPLICATION_FEE_PERCENT must be a number from 0 to 100")
        api_base = (extra.get("STRIPE_API_BASE") or "").strip().rstrip("/") or None
        if api_base and not api_base.startswith(("http://", "https://")):
            problems.append("STRIPE_API_BASE must be an http(s) URL")
        if problems:
            raise BillingConfigError("; ".join(problems))
        return cls(secret_key=secret_key, webhook_secrets=secrets, api_base=api_base,
                   application_fee_percent=fee)


# Setting -> (PlanLimits field, built-in value): small enough to try the product, never
# enough to run a business on it.
FREE_PLAN_SETTINGS = {
    "ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS": ("executions_per_month", 100),
    "ALBEDO_FREE_PLAN_AGENTS": ("agents", 1),
    "ALBEDO_FREE_PLAN_CUSTOMERS": ("customers", 3),
    "ALBEDO_FREE_PLAN_LICENSES": ("licenses", 3),
    "ALBEDO_FREE_PLAN_API_KEYS": ("api_keys", 1),
}


def free_plan_numbers(extra: dict[str, str]) -> dict[str, int]:
    """The free plan's limits from ALBEDO_FREE_PLAN_*; BillingConfigError names a bad one."""
    numbers: dict[str, int] = {}
    problems: list[str] = []
    for name, (quota, default) in FREE_PLAN_SETTINGS.items():
        raw = (extra.get(name) or "").strip()
        if not raw:
            numbers[quota] = default
        elif raw.isdigit():
            numbers[quota] = int(raw)
        else:
            problems.append(f"{name} must be a whole number, 0 or more (got {raw!r})")
    if problems:
        raise BillingConfigError("; ".join(problems))
    return numbers


def _cache() -> dict:
    return current_app.extensions.setdefault("albedo.billing", {})


def free_plan_config() -> dict[str, int]:
    """This app's free-plan limits (parsed once per app)."""
    cache = _cache()
    if "free_plan" not in cache:
        settings = current_app.extensions["albedo.settings"]
        cache["free_plan"] = free_plan_numbers(dict(settings.extra))
    return cache["free_plan"]


def stripe_config() -> StripeConfig | None:
    """The validated Stripe configuration of this app, or None when billing is off."""
    cache = _cache()
    if "config" not in cache:
        settings = current_app.extensions["albedo.settings"]
        cache["config"] = StripeConfig.from_extra(dict(settings.extra))
    return cache["config"]


def _caller_role() -> str | None:
    from flask import g, has_request_context
    from flask_login import current_user

    if not has_request_context():
        return None
    if "principal" in g:
        return g.principal.role
    if current_user and current_user.is_authenticated:
        return current_user.role
    return None


def not_configured_message() -> str:
    """What to say when Stripe is not set up: the setting names to an operator or reseller,
    a neutral sentence naming the seller to a customer (who can do nothing about it)."""
    from tenants.context import current_or_none

    role = _caller_role()
    if role in ("ADMIN", "RESELLER"):
        return ("Billing is not configured on this platform: set STRIPE_SECRET_KEY "
                "and STRIPE_WEBHOOK_SECRETS.")
    tenant = current_or_none()
    seller = tenant.display_name if tenant else "your provider"
    contact = f" at {tenant.support_email}" if tenant and tenant.support_email else ""
    return f"Payments are not available yet; contact {seller}{contact}."


def require_stripe() -> StripeConfig:
    """The configuration, or the clear 409 every billing endpoint answers without it."""
    config = stripe_config()
    if config is None:
        raise ApiError(409, "billing_not_configured", not_configured_message())
    return config
