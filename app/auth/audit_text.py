"""The audit log in words: one sentence per event, with the target's name and a link.

"owner@acme.example revoked license ACME-7F3K…". Names are looked up in one query per kind
of target for a whole page of events (never one per row), in the reader's tenant; a target
deleted since keeps the name recorded in the event's details, or a neutral "(deleted)".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import url_for
from sqlalchemy import select

from app.auth.models import AuditEvent
from app.extensions import db

# {target}: the target's name; other {names} come from the event's details.
VERBS: dict[str, str] = {
    "sign_in": "signed in",
    "sign_in_failed": "failed to sign in",
    "account_locked": "was locked out after repeated failed sign-ins",
    "sign_up": "signed up",
    "password_changed": "changed the password of {target}",
    "api_key_created": "created API key {target}",
    "api_key_revoked": "revoked API key {target}",
    "role_changed": "changed the role of {target} from {before} to {after}",
    "user_deactivated": "deactivated {target}",
    "user_reactivated": "reactivated {target}",
    "user_banned": "banned {target}",
    "user_unbanned": "lifted the ban on {target}",
    "tenant_created": "onboarded reseller {target}",
    "tenant_suspended": "suspended {target}",
    "tenant_reinstated": "reinstated {target}",
    "domain_changed": "{change} domain {hostname}",
    "sign_in_settings_changed": "changed the sign-in settings",
    "license_issued": "issued license {target}",
    "licenses_bulk_issue_started": "started issuing {count} licenses",
    "license_suspended": "suspended license {target}",
    "license_reinstated": "reinstated license {target}",
    "license_revoked": "revoked license {target}",
    "license_renewed": "renewed license {target}",
    "license_extended": "extended license {target}",
    "license_customer_changed": "attached license {target} to {customer_email}",
    "machine_deactivated": "deactivated a machine of a license",
    "signing_key_rotated": "rotated the license signing key",
    "signing_key_retired": "retired a license signing key",
    "agent_provider_changed": "changed the AI provider settings",
    "agent_created": "created agent {target}",
    "agent_updated": "changed agent {target}",
    "agent_deleted": "deleted agent {target}",
    "agent_version_created": "saved version {number} of agent {target}",
    "agent_published": "published version {number} of agent {target}",
    "agent_rolled_back": "rolled agent {target} back to version {number}",
    "conversation_deleted": "deleted a conversation with agent {agent}",
    "widget_key_created": "created widget key {target}",
    "widget_key_updated": "changed widget key {target} ({fields})",
    "widget_key_revoked": "revoked widget key {target}",
    "product_created": "created product {target}",
    "product_updated": "changed product {target} ({fields})",
    "product_deleted": "deleted product {target}",
    "policy_created": "created license policy {target}",
    "policy_updated": "changed license policy {target} ({fields})",
    "policy_deleted": "deleted license policy {target}",
    "price_set": "set the price for {target}",
    "price_removed": "removed the price for {target}",
    "price_book_changed": "changed the price book ({fields})",
    "plan_usage_changed": "changed the included usage of plan {target}",
    "spending_settings_changed": "changed the spending settings of {target} ({fields})",
    "credits_granted": "granted {amount} of credits to {target}",
    "ledger_entry_reversed": "reversed a usage charge of {target}",
    "payouts_onboarding_started": "started payouts onboarding with Stripe",
    "invitation_sent": "invited {email}",
    "invitation_resent": "sent the invitation to {email} again",
    "invitation_revoked": "withdrew the invitation to {email}",
    "invitation_accepted": "accepted an invitation and joined as {role_word}",
    "sign_in_as_started": "signed in as {target} for support",
    "sign_in_as_ended": "stopped signing in as {target}{ending}",
    "branding_changed": "changed the branding ({fields})",
    "plan_created": "created plan {target}",
    "plan_updated": "changed plan {target} ({fields})",
    "plan_changed": "changed plan {target}",
    "plan_deleted": "deleted plan {target}",
    "webhook_endpoint_created": "added webhook endpoint {target}",
    "webhook_endpoint_updated": "changed webhook endpoint {target}",
    "webhook_endpoint_deleted": "removed webhook endpoint {target}",
    "webhook_delivery_replayed": "sent a webhook delivery to {target} again",
    "rest_hook_subscribed": "subscribed {target}",
    "rest_hook_unsubscribed": "unsubscribed {target}",
    "failed_unit_retried": "retried a failed {target_type}",
    "failed_unit_discarded": "discarded a failed {target_type}",
}

# The watched columns (app.auth.audit_watch) in the words their pages use: a sentence never
# shows a column name. Amounts are in minor units of the seller's currency, so a field is
# named, not valued ("spending limit", not "spending_limit_minor").
FIELD_WORDS: dict[str, str] = {
    # branding
    "display_name": "name", "logo_url": "logo", "primary_color": "primary colour",
    "accent_color": "accent colour", "support_email": "support email",
    "license_key_prefix": "license key prefix",
    # agents, plans, webhook endpoints
    "name": "name", "slug": "slug", "description": "description", "status": "status",
    "is_template": "template", "code": "code", "amount_minor": "price",
    "currency": "currency", "interval": "billing interval",
    "executions_per_month": "executions per month", "agents": "agents",
    "customers": "customers", "licenses": "licenses", "api_keys": "API keys",
    "is_default": "default plan", "active": "availability", "stripe_price_id": "Stripe price",
    "url": "URL", "event_types": "events", "enabled": "enabled",
    "signing_secret_rotated": "signing secret",
    # widget keys, license products and policies
    "allowed_origins": "allowed sites", "appearance": "appearance",
    "monthly_cap": "monthly cap", "requires_license": "license requirement",
    "agent_ids": "agents", "entitlements": "entitlements", "product_id": "product",
    "duration_days": "duration", "expiry_strategy": "behaviour when expired",
    "grace_period_seconds": "grace period", "max_machines": "maximum machines",
    "floating": "floating seats", "heartbeat_interval_seconds": "heartbeat interval",
    "max_executions_per_period": "maximum executions per period",
    "execution_period_seconds": "execution period",
    "fingerprint_required": "fingerprint requirement",
    "require_heartbeat": "first heartbeat requirement",
    "check_in_interval_seconds": "check-in interval", "max_cores": "maximum cores",
    # the price book, its prices, plans' included usage, REST hooks
    "selector": "model", "audience": "audience", "kind": "kind",
    "input_per_million_minor": "input price per million tokens",
    "output_per_million_minor": "output price per million tokens",
    "per_execution_minor": "price per execution", "markup_bp": "markup",
    "usd_rate_ppm": "rate to the US dollar", "meter_event_name": "meter event name",
    "stripe_meter_id": "Stripe meter", "included_minor": "included usage",
    "overage_bp": "overage markup", "event_type": "event",
    # customers' spending settings
    "spending_limit_minor": "spending limit", "limit_mode": "what happens at the limit",
    "credits_enabled": "prepaid credits", "auto_topup_below_minor": "automatic top-up threshold",
    "auto_topup_amount_minor": "automatic top-up amount",
}


def field_words(names: Iterable[str]) -> str:
    """"spending limit, prepaid credits": the changed fields as a reader says them."""
    return ", ".join(FIELD_WORDS.get(name, name.replace("_", " ")) for name in names)


ROLE_WORDS = {"RESELLER": "a team member", "USER": "a customer", "ADMIN": "an operator"}
# Why a sign-in-as ended, when it was not the "Return" button.
ENDINGS = {"time_limit": " (ended: time limit)", "signed_out": " (ended: signed out)"}


@dataclass(frozen=True)
class Line:
    event: AuditEvent
    actor: str
    sentence: str
    target: str | None
    link: str | None


class _Defaults(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _names(events: list[AuditEvent], cross: bool
           ) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(target_type, target_id) -> (name, link) for the targets still there.

    ``cross``: the platform operator reads every tenant's log, so names are looked up in
    every tenant (the same named opt-in as the log itself); links to a reseller's pages would
    open on the platform's domain, so only resellers themselves are linked then.
    """
    from app.agents.models import Agent
    from app.auth.models import ApiKey, User
    from app.billing.models import Plan
    from app.integrations.models import WebhookEndpoint
    from app.licensing.models import License
    from tenants.models import Tenant

    wanted: dict[str, set[uuid.UUID]] = {}
    for e in events:
        if e.target_type and e.target_id:
            try:
                wanted.setdefault(e.target_type, set()).add(uuid.UUID(e.target_id))
            except ValueError:
                continue
    found: dict[tuple[str, str], tuple[str, str | None]] = {}

    def load(kind: str, model, name, link=None) -> None:
        ids = wanted.get(kind)
        if not ids:
            return
        stmt = select(model).where(model.id.in_(ids))
        if cross:
            stmt = stmt.execution_options(cross_tenant="platform admin reads the audit log")
            link = None
        for row in db.session.scalars(stmt):
            found[(kind, str(row.id))] = (name(row), link(row) if link else None)

    def user_link(u) -> str | None:
        return url_for("people.customer", customer_id=u.id) if u.role == "USER" else None

    load("user", User, lambda u: u.email, user_link)
    load("license", License, lambda lic: lic.key[:9] + "…",
         lambda lic: url_for("licensing_pages.license_detail", license_id=lic.id))
    load("api_key", ApiKey, lambda k: f"{k.name} ({k.prefix}…)")
    load("agent", Agent, lambda a: a.name,
         lambda a: url_for("agents_pages.editor", agent_id=a.id))
    load("plan", Plan, lambda p: p.name, lambda p: url_for("billing_pages.index"))
    load("webhook_endpoint", WebhookEndpoint, lambda w: w.url,
         lambda w: url_for("integrations.endpoint", endpoint_id=w.id))
    load("tenant", Tenant, lambda t: t.display_name)
    if cross:
        for t in db.session.scalars(select(Tenant).where(Tenant.id.in_(wanted.get("tenant", ())))):
            found[("tenant", str(t.id))] = (t.display_name,
                                            url_for("tenants_pages.reseller", tenant_id=t.id))
    return found


def _actor_labels(events: list[AuditEvent], cross: bool) -> dict[uuid.UUID, str]:
    from app.auth.models import User

    ids = {e.actor_user_id for e in events if e.actor_user_id
           and (not e.actor_label or e.actor_label.startswith("api key "))}
    if not ids:
        return {}
    stmt = select(User).where(User.id.in_(ids))
    if cross:
        stmt = stmt.execution_options(cross_tenant="platform admin reads the audit log")
    return {u.id: u.email for u in db.session.scalars(stmt)}


def describe(events: Iterable[AuditEvent], cross: bool = False) -> list[Line]:
    events = list(events)
    names, actors = _names(events, cross), _actor_labels(events, cross)
    lines = []
    for e in events:
        details: dict[str, Any] = dict(e.details or {})
        actor = e.actor_label or actors.get(e.actor_user_id) or "someone"
        if actor.startswith("api key "):
            actor = f"{actors.get(e.actor_user_id, '')} (with an API key)".strip()
        name, link = names.get((e.target_type or "", e.target_id or ""), (None, None))
        if name is None:
            name = (details.get("name") or details.get("email") or details.get("prefix")
                    or details.get("slug") or details.get("url"))
            if name is None and e.target_type:
                name = f"a {e.target_type.replace('_', ' ')} (deleted)"
        values = _Defaults({k: v for k, v in details.items() if isinstance(v, str | int)})
        values["target"] = name or ""
        values.setdefault("target_type", (e.target_type or "").replace("_", " "))
        values["role_word"] = ROLE_WORDS.get(str(details.get("role")), "a member")
        values["ending"] = ENDINGS.get(str(details.get("reason")), "")
        if isinstance(details.get("fields"), list):
            values["fields"] = field_words(details["fields"])
        template = VERBS.get(e.action, e.action.replace("_", " "))
        lines.append(Line(e, actor, f"{actor} {template.format_map(values)}", name, link))
    return lines
