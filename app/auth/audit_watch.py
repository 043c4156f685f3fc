"""Audit what changes in agents, versions, plans, webhook endpoints, branding and domains,
whoever changes it (a page, the API, a job, the command line).

Why a watcher on the session rather than a call in every service: these rows are written
from many places (pages, API, CLI, jobs) owned by several features; recording the change
where it is flushed means no path forgets to, and no feature has to import the audit log.
The event joins the same transaction, so it commits or rolls back with the change.

Only names and non-secret values are recorded: encrypted columns, secrets and hashes are
never read here (a rotated webhook secret is recorded as "secret rotated", nothing more).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import new_id
from tenants.context import current_id

_BRANDING = ("display_name", "logo_url", "primary_color", "accent_color", "support_email",
             "license_key_prefix")
_AGENT = ("name", "slug", "description", "status", "is_template")
_PLAN = ("code", "name", "amount_minor", "currency", "interval", "executions_per_month",
         "agents", "customers", "licenses", "api_keys", "is_default", "active",
         "stripe_price_id")
_ENDPOINT = ("url", "description", "event_types", "enabled")


def _changed(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """{column: new value} for the watched columns this flush changes."""
    state = inspect(obj)
    changes = {}
    for name in names:
        history = state.attrs[name].history
        if history.has_changes():
            value = history.added[0] if history.added else None
            changes[name] = value if isinstance(value, str | int | float | bool | list) or \
                value is None else str(value)
    return changes


def _events(session: Session) -> list[tuple[str, str, Any, dict[str, Any]]]:
    from app.agents.models import Agent, AgentVersion
    from app.billing.models import Plan
    from app.integrations.models import WebhookEndpoint
    from tenants.models import Domain, Tenant

    found: list[tuple[str, str, Any, dict[str, Any]]] = []
    for obj in session.new:
        if isinstance(obj, Agent | AgentVersion | Plan | WebhookEndpoint) and obj.id is None:
            obj.id = new_id()  # the id the row will have, so the event can name it
        if isinstance(obj, Agent):
            found.append(("agent_created", "agent", obj.id, {"name": obj.name}))
        elif isinstance(obj, AgentVersion):
            found.append(("agent_version_created", "agent", obj.agent_id,
                          {"number": obj.number, "model": obj.model}))
        elif isinstance(obj, Plan):
            found.append(("plan_created", "plan", obj.id, {"name": obj.name, "code": obj.code}))
        elif isinstance(obj, WebhookEndpoint):
            found.append(("webhook_endpoint_created", "webhook_endpoint", obj.id,
                          {"url": obj.url}))
    for obj in session.dirty:
        if isinstance(obj, Agent):
            published = inspect(obj).attrs.published_version.history
            if published.has_changes() and published.added and published.added[0] is not None:
                before = published.deleted[0] if published.deleted else None
                after = published.added[0]
                action = ("agent_rolled_back" if before is not None and after < before
                          else "agent_published")
                found.append((action, "agent", obj.id, {"name": obj.name, "number": after,
                                                        "previous": before}))
            if changes := _changed(obj, _AGENT):
                found.append(("agent_updated", "agent", obj.id,
                              {"name": obj.name, "fields": sorted(changes), **changes}))
        elif isinstance(obj, Plan) and (changes := _changed(obj, _PLAN)):
            found.append(("plan_updated", "plan", obj.id,
                          {"name": obj.name, "fields": sorted(changes), **changes}))
        elif isinstance(obj, WebhookEndpoint):
            changes = _changed(obj, _ENDPOINT)
            if inspect(obj).attrs.secret_encrypted.history.has_changes():
                changes["signing_secret_rotated"] = True  # the fact, never the value
            if changes:
                found.append(("webhook_endpoint_updated", "webhook_endpoint", obj.id,
                              {"url": obj.url, "fields": sorted(changes),
                               **changes}))
        elif isinstance(obj, Tenant) and (changes := _changed(obj, _BRANDING)):
            found.append(("branding_changed", "tenant", obj.id,
                          {"fields": sorted(changes), **changes}))
        elif isinstance(obj, Domain):
            verified = inspect(obj).attrs.verified_at.history
            primary = inspect(obj).attrs.is_primary.history
            if verified.has_changes() and obj.verified_at is not None:
                found.append(("domain_changed", "tenant", obj.tenant_id,
                              {"hostname": obj.hostname, "change": "verified"}))
            if primary.has_changes() and obj.is_primary:
                found.append(("domain_changed", "tenant", obj.tenant_id,
                              {"hostname": obj.hostname, "change": "made primary"}))
    for obj in session.deleted:
        if isinstance(obj, Agent):
            found.append(("agent_deleted", "agent", obj.id, {"name": obj.name}))
        elif isinstance(obj, Plan):
            found.append(("plan_deleted", "plan", obj.id, {"name": obj.name}))
        elif isinstance(obj, WebhookEndpoint):
            found.append(("webhook_endpoint_deleted", "webhook_endpoint", obj.id,
                          {"url": obj.url}))
    return found


def _before_flush(session: Session, flush_context, instances) -> None:
    tenant_id = current_id()
    if tenant_id is None or session is not db.session.registry():
        return
    found = _events(session)
    if not found:
        return
    from app.auth import audit

    actor = audit.acting()
    for action, target_type, target_id, details in found:
        recorded = audit.record(action, target_type=target_type, target_id=target_id,
                                **actor, **details)
        # Stamped here: the isolation guard's own stamping ran before this listener.
        recorded.tenant_id = tenant_id


_installed = False


def install() -> None:
    """Attach to every Session once (after the isolation guard, see create_app)."""
    global _installed
    if not _installed:
        event.listen(Session, "before_flush", _before_flush)
        _installed = True
