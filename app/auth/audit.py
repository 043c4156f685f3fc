"""The audit log: who did what to what, from where, and when. Append-only."""

from __future__ import annotations

import uuid
from typing import Any

from flask import g, has_app_context, has_request_context, request

from app.auth.models import AuditEvent
from app.extensions import db

ACTIONS = ("sign_in", "sign_in_failed", "api_key_created", "api_key_revoked", "role_changed",
           "tenant_suspended", "tenant_reinstated", "password_changed", "sign_up",
           "tenant_created", "domain_changed", "account_locked", "user_deactivated",
           "user_reactivated", "sign_in_settings_changed", "user_banned", "user_unbanned",
           # licensing
           "license_issued", "licenses_bulk_issue_started", "license_suspended",
           "license_reinstated", "license_revoked", "license_renewed", "license_extended",
           "license_customer_changed", "machine_deactivated", "signing_key_rotated",
           "signing_key_retired",
           # billing ("plan_changed": older entries; a plan change is now "plan_updated")
           "plan_changed", "price_set", "price_removed", "price_book_changed",
           "plan_usage_changed", "spending_settings_changed", "credits_granted",
           "ledger_entry_reversed", "payouts_onboarding_started",
           # agents
           "agent_provider_changed", "agent_created", "agent_updated", "agent_deleted",
           "agent_version_created", "agent_published", "agent_rolled_back",
           "conversation_deleted", "widget_key_created", "widget_key_updated",
           "widget_key_revoked",
           # license products and policies
           "product_created", "product_updated", "product_deleted", "policy_created",
           "policy_updated", "policy_deleted",
           # people
           "invitation_sent", "invitation_resent", "invitation_revoked", "invitation_accepted",
           "sign_in_as_started", "sign_in_as_ended",
           # settings and selling
           "branding_changed", "plan_created", "plan_updated", "plan_deleted",
           "webhook_endpoint_created", "webhook_endpoint_updated", "webhook_endpoint_deleted",
           "webhook_delivery_replayed", "rest_hook_subscribed", "rest_hook_unsubscribed",
           # operations (the system page)
           "failed_unit_retried", "failed_unit_discarded")


def acting() -> dict[str, Any]:
    """``actor_user_id`` and ``actor_label`` of whoever acts now, for :func:`record`.

    An API request's principal (user or API key), else the signed-in page user, else the
    command line or a job (no request: the label says so).
    """
    if has_app_context() and "principal" in g:
        principal = g.principal
        label = f"api key {principal.api_key_id}" if principal.api_key_id else ""
        return {"actor_user_id": principal.user_id, "actor_label": label}
    if has_request_context():
        from flask_login import current_user

        if current_user.is_authenticated:
            return {"actor_user_id": current_user.id, "actor_label": current_user.email}
        return {"actor_label": "anonymous"}
    return {"actor_label": "system"}


def record(action: str, *, actor_user_id: uuid.UUID | None = None, actor_label: str = "",
           target_type: str | None = None, target_id: object = None,
           tenant_id: uuid.UUID | None = None, **details: Any) -> AuditEvent:
    """Add an audit event to the current transaction (it commits with the change it records)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(action=action, actor_user_id=actor_user_id, actor_label=actor_label,
                       target_type=target_type,
                       target_id=str(target_id) if target_id is not None else None,
                       ip_address=request.remote_addr if has_request_context() else None,
                       details=details)
    if tenant_id is not None:
        event.tenant_id = tenant_id
    db.session.add(event)
    return event
