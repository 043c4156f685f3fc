"""Error tracking with Sentry (sentry-sdk), when ``SENTRY_DSN`` is set.

The Flask and RQ integrations report unhandled errors of requests and jobs, and the logging
integration reports ``log.exception`` records (Albedo's own 500 handler logs one, so errors it
turns into the envelope are reported too). Every event is tagged with the request id, the
tenant's slug and the RQ job id, the ids the JSON logs carry, so an event leads to its log
lines.

Nothing secret leaves: the SDK never sends default PII (cookies, the Authorization header,
users' addresses), its scrubber blanks every field named in :data:`DENYLIST` at any depth,
and :func:`before_send` replaces anything in free text that looks like a credential
(bearer tokens, API keys, license keys, provider and webhook secrets).
"""

from __future__ import annotations

import re
from typing import Any

from app.settings import Settings

# Field names (headers, form fields, JSON keys, local variables) whose values never leave.
DENYLIST = [
    "key", "license_key", "api_key", "provider_key", "openai_api_key", "secret",
    "webhook_secret", "signing_secret", "client_secret", "stripe_secret_key",
    "stripe-signature", "stripe_signature", "webhook-signature", "webhook_signature",
    "albedo-signature", "x-api-key", "authorization", "cookie", "set-cookie", "password",
    "new_password", "current_password", "refresh_token", "access_token", "token",
    "private_key", "encryption_keys", "secret_key", "sendgrid_api_key", "smtp_password",
]
_FILTERED = "[Filtered]"
# Credentials in free text: messages, exception values, breadcrumbs, stack-frame strings.
_PATTERNS = (
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bak_[0-9a-f]{8}_[A-Za-z0-9_-]{16,}"),        # API keys
    re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}"),   # Stripe keys
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]{8,}"),                  # webhook secrets
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),                     # OpenAI-style provider keys
    re.compile(r"\b[A-Z][A-Z0-9]{1,15}-[0-9A-Z]{40,}"),         # license keys
    re.compile(r"\b[A-Za-z0-9_-]{43}="),                        # Fernet keys
)


def scrub_text(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(_FILTERED, text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _tags() -> dict[str, str]:
    from flask import g, has_app_context

    from tenants.context import current_or_none

    tags: dict[str, str] = {}
    if has_app_context() and g.get("request_id"):
        tags["request_id"] = g.request_id
    tenant = current_or_none()
    if tenant is not None:
        tags["tenant"] = tenant.slug
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:
        job = None
    if job is not None:
        meta = job.meta or {}
        tags["job_id"] = job.id
        if meta.get("task"):
            tags["task"] = meta["task"]
        if "tenant" not in tags and meta.get("tenant_id"):
            # RQ reports a job's failure after the job's own context has ended.
            slug = _slug_of(meta["tenant_id"])
            if slug:
                tags["tenant"] = slug
    return tags


def _slug_of(tenant_id: str) -> str | None:
    import uuid

    from flask import has_app_context

    if not has_app_context():
        return None
    try:
        from tenants.web import resolver

        tenant = resolver().by_id(uuid.UUID(tenant_id))  # the per-process cache
    except Exception:
        return None
    return tenant.slug if tenant else None


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """Tag the event with the ids the logs carry, then scrub credentials from its text."""
    event.setdefault("tags", {}).update(_tags())
    return _scrub(event)


def init(settings: Settings) -> bool:
    """Start the SDK once per process when a DSN is configured. Returns whether it is on."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.rq import RqIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    client = sentry_sdk.get_client()
    if client.is_active() and client.dsn == settings.sentry_dsn:
        return True
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment or settings.env,
        integrations=[FlaskIntegration(transaction_style="url"), RqIntegration()],
        # send_default_pii stays at its default, off: no cookies, auth headers or addresses.
        max_request_body_size="small",
        event_scrubber=EventScrubber(denylist=sorted({*DEFAULT_DENYLIST, *DENYLIST}),
                                     recursive=True),
        before_send=before_send,
        before_breadcrumb=lambda crumb, _hint: _scrub(crumb),
        # None (not 0.0) turns tracing off entirely: no transactions, no client reports.
        traces_sample_rate=settings.sentry_traces_sample_rate or None,
    )
    return True
