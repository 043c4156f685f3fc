"""Which tenant this request or job acts for: one ContextVar, one accessor.

Requests set it from the Host header (tenants.web), jobs from the tenant id recorded at
enqueue time (jobs.runner). Everything else reads it through :func:`current`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


class NoTenantError(RuntimeError):
    """Tenant-scoped data was touched with no tenant in context and no cross-tenant opt-in."""


@dataclass(frozen=True)
class TenantInfo:
    """A read-only snapshot of a tenant, safe to cache and share between requests."""

    id: uuid.UUID
    slug: str
    kind: str
    status: str
    name: str
    display_name: str
    logo_url: str | None
    primary_color: str
    accent_color: str
    support_email: str | None
    license_key_prefix: str
    primary_host: str
    signup_enabled: bool = True
    favicon_url: str | None = None

    @property
    def is_platform(self) -> bool:
        return self.kind == "platform"

    @property
    def is_active(self) -> bool:
        return self.status == "active"


_current: ContextVar[TenantInfo | None] = ContextVar("albedo_tenant", default=None)
_cross_tenant_reason: ContextVar[str | None] = ContextVar("albedo_cross_tenant", default=None)


def current() -> TenantInfo:
    """The tenant in context; raises NoTenantError when there is none."""
    tenant = _current.get()
    if tenant is None:
        raise NoTenantError("no tenant in context")
    return tenant


def current_or_none() -> TenantInfo | None:
    return _current.get()


def current_id() -> uuid.UUID | None:
    tenant = _current.get()
    return tenant.id if tenant is not None else None


def set_current(tenant: TenantInfo | None) -> None:
    """Set for the rest of this context (a request); tenants.web resets it at teardown."""
    _current.set(tenant)


@contextmanager
def activate(tenant: TenantInfo) -> Iterator[TenantInfo]:
    """Act as ``tenant`` inside the block (jobs, CLI commands, tests)."""
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)


def cross_tenant_reason() -> str | None:
    return _cross_tenant_reason.get()


@contextmanager
def cross_tenant(reason: str) -> Iterator[None]:
    """Opt into reading and writing across tenants; only platform code does, and says why."""
    if not reason or not reason.strip():
        raise ValueError("cross-tenant access must name its reason")
    token = _cross_tenant_reason.set(reason)
    try:
        yield
    finally:
        _cross_tenant_reason.reset(token)
