"""The dashboard's navigation: features register their pages here, the layout shows the
ones the signed-in user's role may open (so base.html needs no edit per feature).

Items are grouped by what people do there (Build, Sell, Connect, Settings; the platform's
own pages under Platform). ``register(app, label, endpoint, roles)`` keeps working without
a group: the group then comes from the tables below (by endpoint, then by label), and an
item nobody placed lands under "More" rather than disappearing.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, request, url_for
from flask_login import current_user
from werkzeug.routing import BuildError

GROUPS = ("Build", "Sell", "Connect", "Settings", "Platform", "More")
FALLBACK_GROUP = "More"
ALL_ROLES = ("ADMIN", "RESELLER", "USER")

# Where known pages go when their feature registers them without a group.
DEFAULT_GROUPS: dict[str, str] = {
    "agents_pages.index": "Build",
    "agents_pages.usage_page": "Build",
    "agents_pages.history": "Build",
    "agents_pages.provider": "Build",
    "licensing_pages.licenses": "Sell",
    "my_licenses.my_licenses": "Sell",
    "billing_pages.index": "Sell",
    "integrations.endpoints": "Connect",
    "api_keys_page.index": "Connect",
    "api_docs.docs": "Connect",
    "tenants_pages.branding": "Settings",
    "tenants_pages.domains": "Settings",
    "oauth.sign_in_settings": "Settings",
    "account.settings": "Settings",
    "audit_page.index": "Settings",
    "tenants_pages.resellers": "Platform",
    "email.outbox": "Platform",
}
# Pages other features add later, placed by the words of their label.
LABEL_GROUPS: dict[str, str] = {
    "customer": "Sell", "plan": "Sell", "billing": "Sell", "license": "Sell",
    "agent": "Build", "usage": "Build", "execution": "Build",
    "integration": "Connect", "webhook": "Connect", "api": "Connect", "widget": "Connect",
    "branding": "Settings", "domain": "Settings", "sign-in": "Settings", "team": "Settings",
    "account": "Settings", "audit": "Settings", "people": "Settings",
    "reseller": "Platform", "outbox": "Platform", "system": "Platform",
}


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    roles: tuple[str, ...]
    group: str = FALLBACK_GROUP


def group_for(label: str, endpoint: str) -> str:
    if endpoint in DEFAULT_GROUPS:
        return DEFAULT_GROUPS[endpoint]
    lowered = label.lower()
    for word, group in LABEL_GROUPS.items():
        if word in lowered:
            return group
    return FALLBACK_GROUP


def register(app: Flask, label: str, endpoint: str,
             roles: tuple[str, ...] = ALL_ROLES, group: str | None = None) -> None:
    """Show ``endpoint`` as ``label`` to ``roles``, under ``group`` (or its default group).

    Registering an endpoint twice keeps one item (the roles of both), so two features that
    both link a shared page do not show it twice."""
    items: list[NavItem] = app.extensions.setdefault("albedo.nav", [])
    group = group if group in GROUPS else group_for(label, endpoint)
    for i, item in enumerate(items):
        if item.endpoint == endpoint:
            merged = tuple(dict.fromkeys((*item.roles, *roles)))
            items[i] = NavItem(item.label, endpoint, merged, item.group)
            return
    items.append(NavItem(label, endpoint, tuple(roles), group))


def _visible(app: Flask) -> list[tuple[NavItem, str]]:
    if not current_user or not current_user.is_authenticated:
        return []
    shown = []
    for item in app.extensions.get("albedo.nav", []):
        if current_user.role not in item.roles:
            continue
        try:
            shown.append((item, url_for(item.endpoint)))
        except BuildError:  # a page that needs arguments or is not installed: not a menu item
            continue
    return shown


def nav_groups(app: Flask) -> list[dict]:
    """The visible items, grouped in GROUPS order; ``current`` marks the page being viewed."""
    by_group: dict[str, list[dict]] = {}
    for item, url in _visible(app):
        by_group.setdefault(item.group, []).append({
            "label": item.label, "url": url, "endpoint": item.endpoint,
            "current": request.endpoint == item.endpoint})
    return [{"label": g, "items": by_group[g]} for g in GROUPS if g in by_group]


def init_app(app: Flask) -> None:
    @app.context_processor
    def _nav():
        def nav_items():
            return [{"label": i.label, "url": url} for i, url in _visible(app)]

        return {"nav_items": nav_items, "nav_groups": lambda: nav_groups(app)}
