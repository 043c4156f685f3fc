"""Tenants: who a request acts for, and the walls between them.

The one accessor is :func:`current`; see tenants.context for the rest.
"""

from tenants.context import (
    NoTenantError,
    TenantInfo,
    activate,
    cross_tenant,
    current,
    current_id,
    current_or_none,
)

__all__ = [
    "NoTenantError",
    "TenantInfo",
    "activate",
    "cross_tenant",
    "current",
    "current_id",
    "current_or_none",
]
