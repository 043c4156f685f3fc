"""The dashboard's navigation: features register their pages here, the layout shows the
ones the signed-in user's role may open (so base.html needs no edit per feature)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, url_for
from flask_login import current_user


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    roles: tuple[str, ...]


def register(app: Flask, label: str, endpoint: str,
             roles: tuple[str, ...] = ("ADMIN", "RESELLER", "USER")) -> None:
    app.extensions.setdefault("albedo.nav", []).append(NavItem(label, endpoint, roles))


def init_app(app: Flask) -> None:
    @app.context_processor
    def _nav():
        def nav_items():
            if not current_user or not current_user.is_authenticated:
                return []
            return [{"label": i.label, "url": url_for(i.endpoint)}
                    for i in app.extensions.get("albedo.nav", [])
                    if current_user.role in i.roles]

        return {"nav_items": nav_items}
