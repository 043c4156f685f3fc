"""The quick start's default plans, so trying the demo does not stop at the built-in free
plan's single agent and API key (``flask albedo seed-demo`` and ``make run`` call this)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.billing.models import Plan
from app.billing.plans import create_plan
from app.extensions import db
from tenants.context import TenantInfo, activate

# What every reseller gets from the platform without a subscription, and what the demo
# reseller's customers get from it without one.
FOR_RESELLERS: dict[str, Any] = {
    "code": "starter", "name": "Starter", "executions_per_month": 1000, "agents": 10,
    # Room for the documented bulk issue of 10,000 licenses (docs/license-keys.md).
    "customers": 25, "licenses": 25_000, "api_keys": 10}
FOR_CUSTOMERS: dict[str, Any] = {
    "code": "free", "name": "Free", "executions_per_month": 100, "agents": 3, "api_keys": 2}


def seed_demo_plans(platform: TenantInfo, reseller: TenantInfo) -> None:
    """Give each tenant a default plan unless it has one already (idempotent)."""
    for tenant, spec in ((platform, FOR_RESELLERS), (reseller, FOR_CUSTOMERS)):
        with activate(tenant):
            if db.session.scalars(select(Plan.id).where(Plan.is_default.is_(True))).first():
                continue
            create_plan(**spec, is_default=True)
