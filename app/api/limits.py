"""Rate limits (flask-limiter on Redis, the embedded one by default).

Three shared budgets apply to every request: per client IP (default 100/minute), per
credential (each API key or token, default 600/minute) and per tenant (default 3000/minute);
sign-in, token and password-reset endpoints add a stricter per-IP budget (default 10/minute).
Each is configurable (ALBEDO_RATE_LIMIT_IP / _CREDENTIAL / _TENANT / _AUTH). The strategy is
limits' sliding-window counter: two counters per key, so each check is one small Redis
script of constant cost whatever the limit (a moving window keeps one entry per hit). All the
budgets of a request are taken in one Redis round trip (``app.api.budgets``), which also
confirms a cached credential is still current.

When Redis is unreachable, limits fall back to in-memory counters in each process rather than
failing requests: an outage of the limiter's storage should not become an outage of the API,
and per-process limits still stop a single client from flooding one worker. The fallback is
logged; once Redis answers again the shared counters take over.
"""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask_limiter import Limit

from app.api.budgets import OneTripLimiter
from app.settings import Settings
from tenants.context import current_or_none

DEFAULTS = {"ip": "100/minute", "credential": "600/minute", "tenant": "3000/minute",
            "auth": "10/minute", "stripe_webhook": "3000/minute"}


def configured(name: str) -> str:
    settings: Settings = current_app.extensions["albedo.settings"]
    return settings.extra.get(f"ALBEDO_RATE_LIMIT_{name.upper()}", DEFAULTS[name])


def client_ip() -> str:
    # request.remote_addr honours X-Forwarded-For only behind a configured proxy (ProxyFix).
    return request.remote_addr or "unknown"


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def credential_key() -> str:
    # A hash: the bucket is per credential without the secret sitting in Redis.
    return hashlib.sha256((_bearer() or "").encode()).hexdigest()[:32]


def tenant_key() -> str:
    tenant = current_or_none()
    return str(tenant.id) if tenant else "-"


limiter = OneTripLimiter(
    client_ip,
    default_limits=[
        Limit(lambda: configured("ip"), key_function=client_ip, scope="ip", shared=True),
        Limit(lambda: configured("credential"), key_function=credential_key,
              scope="credential", shared=True, exempt_when=lambda: _bearer() is None),
        Limit(lambda: configured("tenant"), key_function=tenant_key, scope="tenant",
              shared=True, exempt_when=lambda: current_or_none() is None),
    ],
)


def auth_limit():
    """The stricter budget for credential-guessing endpoints (sign-in, token, reset)."""
    return limiter.limit(lambda: configured("auth"), key_func=client_ip, scope="auth",
                         methods=["POST"])


def stripe_webhook_limit():
    """The Stripe webhook's own budget per sending IP (ALBEDO_RATE_LIMIT_STRIPE_WEBHOOK,
    3000/minute), *instead of* the shared IP and tenant budgets: a route limit overrides the
    defaults. Stripe sends bursts from a few addresses (a backlog after an outage, many
    subscriptions renewing at once), every request is authenticated by its signature, and a
    429 only makes Stripe retry later, so the shared 100/minute per IP refused real events."""
    return limiter.limit(lambda: configured("stripe_webhook"), key_func=client_ip,
                         scope="stripe_webhook")


def init_app(app) -> None:
    """flask-limiter, with Retry-After kept for the answers it means something on."""

    # Registered before flask-limiter's own hook, so it runs after it (Flask calls
    # after_request functions in reverse order). flask-limiter puts Retry-After on every
    # answer; on a 200 or a 404 it reads as "come back later", and clients such as Zapier
    # act on it. X-RateLimit-* stay on every answer.
    @app.after_request
    def _retry_after_only_when_refused(response):
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response

    limiter.init_app(app)
    # After flask-limiter's own (disabled: RATELIMIT_HEADERS_ENABLED is off) header hook and
    # before the Retry-After rule above, Flask running after_request hooks in reverse.
    app.after_request(limiter.inject_headers)


def storage_uri(settings: Settings) -> str:
    from app.redis import redis_url

    url = redis_url(settings)
    return "redis+unix://" + url[len("unix://"):] if url.startswith("unix://") else url
