"""Embedded agents: publishable widget keys, origin-bound widget tokens, the chat widget."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the widget's API, script and pages (called by create_app)."""
    from app.api import limits
    from app.extensions import api
    from app.web import nav
    from app.widget import api as widget_api
    from app.widget import assets, views
    from app.widget.config import WidgetConfig

    # Validated at start: a bad setting stops the start with a sentence naming it.
    app.extensions["albedo.widget_config"] = WidgetConfig.from_extra(
        app.extensions["albedo.settings"].extra)
    limits.limiter.exempt(assets.bp)
    app.register_blueprint(assets.bp)
    app.register_blueprint(views.bp)
    nav.register(app, "Widget", "widget_pages.index", roles=("RESELLER", "USER"))
    api.register_blueprint(widget_api.keys_blp, url_prefix="/api/v1/widget/keys")
    api.register_blueprint(widget_api.embed_blp, url_prefix="/api/v1/widget/embed")
