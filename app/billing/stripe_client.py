"""The official Stripe client, configured once per app, and the one place that calls it.

The client retries network failures and 409/5xx answers itself (``max_network_retries``),
and it reuses one generated Idempotency-Key for every attempt of a POST, so a retried
create never creates twice. ``STRIPE_API_BASE`` points it at a stand-in in tests.
"""

from __future__ import annotations

from typing import Any

import stripe
from flask import current_app

from app.billing.config import StripeConfig, require_stripe
from app.errors import ApiError


def client(config: StripeConfig | None = None) -> stripe.StripeClient:
    config = config or require_stripe()
    cache = current_app.extensions.setdefault("albedo.billing", {})
    cached = cache.get("client")
    if cached is None or cached[0] is not config:
        base = {}
        if config.api_base:
            base = {"api": config.api_base, "connect": config.api_base,
                    "files": config.api_base, "meter_events": config.api_base}
        http = stripe.RequestsClient(timeout=20) if _has_requests() else None
        cached = (config, stripe.StripeClient(
            config.secret_key, base_addresses=base,
            max_network_retries=config.max_network_retries, http_client=http))
        cache["client"] = cached
    return cached[1]


def _has_requests() -> bool:
    try:
        import requests  # noqa: F401
    except ImportError:
        return False
    return True


def plain(obj: Any) -> dict[str, Any]:
    """A StripeObject as a plain dict: the rest of billing reads JSON, not client classes."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def on_account(account_id: str | None, **extra: Any) -> dict[str, Any]:
    """Request options: act on a reseller's connected account when ``account_id`` is set."""
    options: dict[str, Any] = dict(extra)
    if account_id:
        options["stripe_account"] = account_id
    return options


def stripe_failure(exc: stripe.StripeError) -> ApiError:
    """What an API caller sees when Stripe refuses or cannot be reached."""
    if isinstance(exc, stripe.InvalidRequestError):
        return ApiError(400, "stripe_invalid_request",
                        "Stripe refused the request: " + (exc.user_message or str(exc))[:300])
    return ApiError(502, "stripe_unavailable",
                    "Stripe could not be reached or failed; try again shortly.")
