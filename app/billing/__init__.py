"""Billing: plans and limits, Stripe Checkout and subscriptions, webhooks, invoices, Connect."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the blueprints; refuse to start with invalid STRIPE_* or free-plan settings."""
    from app.billing import api, views
    from app.billing.config import StripeConfig, free_plan_numbers
    from app.extensions import api as smorest_api
    from app.web import nav

    extra = dict(app.extensions["albedo.settings"].extra)
    StripeConfig.from_extra(extra)
    free_plan_numbers(extra)
    smorest_api.register_blueprint(api.blp, url_prefix="/api/v1/billing")
    from app.billing import ledger, rebilling_api, rebilling_views

    ledger.register()  # the usage ledger reacts to execution.finished
    from app.billing import book_cache

    book_cache.install()  # committed price changes invalidate the books cached per process
    smorest_api.register_blueprint(rebilling_api.blp, url_prefix="/api/v1/billing")
    app.register_blueprint(rebilling_views.bp)
    nav.register(app, "Usage", "rebilling_pages.index")
    app.register_blueprint(views.bp)
    nav.register(app, "Billing", "billing_pages.index")
