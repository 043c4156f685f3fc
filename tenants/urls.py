"""Absolute URLs, always on the tenant's primary domain and never on the request's Host.

A Host header is attacker-controlled; a password-reset link built from it would hand the
token to whoever sent the request.
"""

from __future__ import annotations

from flask import current_app

from tenants.context import TenantInfo, current


def base_url(tenant: TenantInfo | None = None) -> str:
    tenant = tenant or current()
    settings = current_app.extensions["albedo.settings"]
    port = settings.public_port
    default_port = 443 if settings.url_scheme == "https" else 80
    suffix = f":{port}" if port and port != default_port else ""
    return f"{settings.url_scheme}://{tenant.primary_host}{suffix}"


def absolute_url(path: str, tenant: TenantInfo | None = None) -> str:
    if not path.startswith("/"):
        raise ValueError("absolute_url takes a path starting with '/'")
    return base_url(tenant) + path


def tenant_url_for(endpoint: str, tenant: TenantInfo | None = None, **values: object) -> str:
    """Like url_for(_external=True), but on the tenant's primary domain; works in jobs too."""
    tenant = tenant or current()
    adapter = current_app.url_map.bind(tenant.primary_host)
    path = adapter.build(endpoint, values, force_external=False)
    return absolute_url(path, tenant)
