"""Audit what changes in agents, versions, plans, webhook endpoints, branding and domains,
and in the settings staff keep (widget keys, license products and policies, the price book
and its prices, plans' included usage, REST hook subscriptions, customers' spending
settings), whoever changes it (a page, the API, a job, the command line).

Why a watcher on the session rather than a call in every service: these rows are written
from many places (pages, API, CLI, jobs) owned by several features; recording the change
where it is flushed means no path forgets to, and no feature has to import the audit log.
The event joins the same transaction, so it commits or rolls back with the change.

Only names and non-secret values are recorded: encrypted columns, secrets and hashes are
never read here (a rotated webhook secret is recorded as "secret rotated", nothing more).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

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
_DEFAULT_BOOK = ("usd", 1_000_000, None, None)  # app.billing.pricing's defaults


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | list | dict) or \
        value is None else str(value)


def _changed(obj: Any, names: tuple[str, ...], before: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """{column: new value} for the watched columns this flush changes (and, into
    ``before``, the values they had)."""
    state = inspect(obj)
    changes = {}
    for name in names:
        history = state.attrs[name].history
        if history.has_changes():
            changes[name] = _plain(history.added[0] if history.added else None)
            if before is not None:
                before[name] = _plain(history.deleted[0] if history.deleted else None)
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
        elif isinstance(obj, Plan) and (changes := _changed(obj, _PLAN, before := {})):
            # The one entry for a plan change, whichever path made it (see update_plan).
            found.append(("plan_updated", "plan", obj.id,
                          {"name": obj.name, "fields": sorted(changes), **changes,
                           "before": before}))
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


@dataclass(frozen=True)
class _Setting:
    """How one kind of staff-kept setting is audited: its target type, the columns whose
    change is recorded, its name in a sentence, and its actions (None: not recorded)."""

    kind: str
    columns: tuple[str, ...]
    name: Callable[[Any], str]
    created: str | None
    updated: str | None
    deleted: str | None = None
    target: Callable[[Any], Any] = lambda row: row.id
    revoked: str | None = None  # the action when ``revoked_at`` is set
    unchanged: Callable[[Any], bool] = lambda row: False  # a new row that changes nothing


@cache
def _settings() -> dict[type, _Setting]:
    from app.billing.rebilling_models import CustomerAccount, PlanUsage, Price, PriceBook
    from app.integrations.models import RestHook
    from app.licensing.models import Policy, Product
    from app.widget.models import WidgetKey

    policy_columns = tuple(c.key for c in Policy.__table__.columns
                           if c.key not in ("id", "tenant_id", "created_at", "updated_at"))
    return {
        WidgetKey: _Setting("widget_key", ("name", "allowed_origins", "appearance",
                                           "monthly_cap", "requires_license"),
                            lambda k: k.name, "widget_key_created", "widget_key_updated",
                            revoked="widget_key_revoked"),
        Product: _Setting("product", ("name", "code", "agent_ids", "entitlements"),
                          lambda p: p.name, "product_created", "product_updated",
                          "product_deleted"),
        Policy: _Setting("policy", policy_columns, lambda p: p.name, "policy_created",
                         "policy_updated", "policy_deleted"),
        Price: _Setting("price", ("selector", "audience", "kind", "input_per_million_minor",
                                  "output_per_million_minor", "per_execution_minor",
                                  "markup_bp"),
                        lambda p: p.selector, "price_set", "price_set", "price_removed"),
        PriceBook: _Setting("price_book", ("currency", "usd_rate_ppm", "meter_event_name",
                                           "stripe_meter_id"),
                            lambda b: b.currency.upper(), "price_book_changed",
                            "price_book_changed", target=lambda b: current_id(),
                            # Made at its defaults on the first edit, then changed: the
                            # change is the entry.
                            unchanged=lambda b: (b.currency, b.usd_rate_ppm, b.meter_event_name,
                                                 b.stripe_meter_id) == _DEFAULT_BOOK),
        PlanUsage: _Setting("plan", ("included_minor", "overage_bp"), lambda u: "",
                            "plan_usage_changed", "plan_usage_changed",
                            target=lambda u: u.plan_id),
        # The URL of a subscription is the subscriber's capability: its host only.
        RestHook: _Setting("rest_hook", ("event_type",),
                           lambda h: f"{h.event_type} to {urlsplit(h.target_url).hostname}",
                           "rest_hook_subscribed", None, "rest_hook_unsubscribed"),
        # Created on a customer's first execution too: only the seller's settings count.
        CustomerAccount: _Setting("user", ("spending_limit_minor", "limit_mode",
                                           "credits_enabled", "auto_topup_below_minor",
                                           "auto_topup_amount_minor"),
                                  lambda a: "", None, "spending_settings_changed",
                                  target=lambda a: a.user_id),
    }


def watched_columns() -> set[str]:
    """Every column whose change an entry can list in its ``fields`` (and the one flag
    that stands for a rotated secret): what app.auth.audit_text must put in words."""
    names = set(_BRANDING + _AGENT + _PLAN + _ENDPOINT) | {"signing_secret_rotated"}
    for setting in _settings().values():
        names.update(setting.columns)
    return names


def _setting_events(session: Session) -> list[tuple[str, str, Any, dict[str, Any]]]:
    settings = _settings()
    found: list[tuple[str, str, Any, dict[str, Any]]] = []
    for bucket, when in ((session.new, "created"), (session.dirty, "updated"),
                         (session.deleted, "deleted")):
        for obj in bucket:
            setting = settings.get(type(obj))
            if setting is None:
                continue
            if when == "created" and obj.id is None:
                obj.id = new_id()
            action = getattr(setting, when)
            details: dict[str, Any] = {}
            if when == "updated":
                revoked = setting.revoked and inspect(obj).attrs.revoked_at.history
                if revoked and revoked.added and revoked.added[0] is not None:
                    found.append((setting.revoked, setting.kind, setting.target(obj),
                                  {"name": setting.name(obj)}))
                before: dict[str, Any] = {}
                details = _changed(obj, setting.columns, before)
                if not details:
                    continue
                details = {"fields": sorted(details), **details, "before": before}
            elif when == "created":
                if setting.unchanged(obj):
                    continue
                details = {name: _plain(getattr(obj, name)) for name in setting.columns
                           if setting.kind != "rest_hook"}
                details["fields"] = sorted(name for name, value in details.items()
                                           if value is not None)
            if action:
                found.append((action, setting.kind, setting.target(obj),
                              {"name": setting.name(obj), **details}))
    return found


def _before_flush(session: Session, flush_context, instances) -> None:
    tenant_id = current_id()
    if tenant_id is None or session is not db.session.registry():
        return
    found = _events(session) + _setting_events(session)
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
