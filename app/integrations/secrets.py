"""Endpoint signing secrets at rest: encrypted with app.secrets_box, bound to the tenant."""

from __future__ import annotations

from app import clock, secrets_box
from app.integrations.models import WebhookEndpoint
from tenants.context import current

PURPOSE = "webhook-endpoint-secret"


def seal(secret: str) -> str:
    """Encrypt for the tenant in context (a new endpoint has no tenant_id until flushed)."""
    return secrets_box.encrypt(secret, current().id, PURPOSE)


def current_secret(endpoint: WebhookEndpoint) -> str:
    return secrets_box.decrypt_text(endpoint.secret_encrypted, endpoint.tenant_id, PURPOSE)


def endpoint_secrets(endpoint: WebhookEndpoint) -> list[str]:
    """The secrets that sign right now: the current one, plus the previous one during the
    overlap after a rotation."""
    found = [current_secret(endpoint)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires and clock.now() < expires:
        found.append(secrets_box.decrypt_text(endpoint.previous_secret_encrypted,
                                              endpoint.tenant_id, PURPOSE))
    return found
