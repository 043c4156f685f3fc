"""Creating and changing tenants and their domains (platform-level operations)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from app import clock
from app.extensions import db
from tenants.context import cross_tenant
from tenants.contrast import white_text_problem
from tenants.hosts import normalise_host
from tenants.models import Domain, Tenant
from tenants.resolution import snapshot

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
KEY_PREFIX = re.compile(r"^[A-Z][A-Z0-9]{1,11}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Subdomains the platform keeps for itself.
RESERVED_SLUGS = frozenset({"www", "api", "admin", "app", "mail", "static", "platform", "status"})


class TenantValidationError(ValueError):
    """Bad tenant input; ``details`` maps each field to what is wrong with it."""

    def __init__(self, details: dict[str, str]):
        self.details = details
        super().__init__("; ".join(f"{k}: {v}" for k, v in details.items()))


@dataclass
class Branding:
    display_name: str | None = None
    logo_url: str | None = None
    primary_color: str | None = None
    accent_color: str | None = None
    support_email: str | None = None
    license_key_prefix: str | None = None


def _validate_branding(b: Branding, problems: dict[str, str]) -> None:
    for name in ("primary_color", "accent_color"):
        value = getattr(b, name)
        if value is not None and not HEX_COLOUR.match(value):
            problems[name] = "must be a hex colour such as #1a2b3c"
    # The header and every button put white text on the primary colour (WCAG AA or refused);
    # the accent gets dark or light text, whichever reads, so any accent is readable.
    if b.primary_color is not None and "primary_color" not in problems:
        unreadable = white_text_problem(b.primary_color.lower())
        if unreadable:
            problems["primary_color"] = unreadable
    if b.license_key_prefix is not None and not KEY_PREFIX.match(b.license_key_prefix):
        problems["license_key_prefix"] = "2-12 capital letters or digits, starting with a letter"
    if b.support_email is not None and b.support_email and not EMAIL.match(b.support_email):
        problems["support_email"] = "must be an email address"
    if b.logo_url is not None and b.logo_url and not b.logo_url.startswith(("https://", "/")):
        problems["logo_url"] = "must be an https:// URL or a path on this site"
    if b.display_name is not None and not b.display_name.strip():
        problems["display_name"] = "cannot be empty"


def create_tenant(slug: str, name: str, kind: str = "reseller",
                  branding: Branding | None = None) -> Tenant:
    branding = branding or Branding()
    problems: dict[str, str] = {}
    slug = (slug or "").strip().lower()
    if not SLUG.match(slug):
        problems["slug"] = "1-32 lowercase letters, digits or hyphens"
    elif slug in RESERVED_SLUGS and kind != "platform":
        problems["slug"] = "is reserved"
    if kind not in ("platform", "reseller"):
        problems["kind"] = "must be platform or reseller"
    if not (name or "").strip():
        problems["name"] = "cannot be empty"
    _validate_branding(branding, problems)
    if not problems:
        if db.session.scalars(select(Tenant.id).where(Tenant.slug == slug)).first():
            problems["slug"] = "is taken"
        elif kind == "platform" and db.session.scalars(
                select(Tenant.id).where(Tenant.kind == "platform")).first():
            problems["kind"] = "there is already a platform tenant"
    if problems:
        raise TenantValidationError(problems)
    prefix = branding.license_key_prefix or re.sub(r"[^A-Z0-9]", "", slug.upper())[:12]
    if not KEY_PREFIX.match(prefix):
        prefix = "K" + prefix[:11] if len(prefix) >= 1 else "KEY"
    tenant = Tenant(
        slug=slug, name=name.strip(), kind=kind, status="active",
        display_name=(branding.display_name or name).strip(),
        logo_url=branding.logo_url or None,
        primary_color=branding.primary_color or "#4f46e5",
        accent_color=branding.accent_color or "#0ea5e9",
        support_email=branding.support_email or None,
        license_key_prefix=prefix,
    )
    db.session.add(tenant)
    db.session.flush()
    return tenant


def update_branding(tenant: Tenant, branding: Branding) -> Tenant:
    problems: dict[str, str] = {}
    _validate_branding(branding, problems)
    if problems:
        raise TenantValidationError(problems)
    for field_name, value in vars(branding).items():
        if value is not None:
            setattr(tenant, field_name, value.strip() if isinstance(value, str) else value)
    return tenant


def set_status(tenant: Tenant, status: str) -> Tenant:
    if status not in ("active", "suspended"):
        raise TenantValidationError({"status": "must be active or suspended"})
    if tenant.kind == "platform" and status == "suspended":
        raise TenantValidationError({"status": "the platform tenant cannot be suspended"})
    tenant.status = status
    return tenant


# Domains have row-level security (migration 0009): a write is its tenant's, the platform
# operator's, or, here, an explicit opt-in. These helpers are the platform's own domain
# management (API, pages, CLI, tests), so they opt in and flush inside it.
_DOMAINS = "the platform manages a reseller's domains"


def add_domain(tenant: Tenant, hostname: str) -> Domain:
    with cross_tenant(_DOMAINS):
        return _add_domain(tenant, hostname)


def _add_domain(tenant: Tenant, hostname: str) -> Domain:
    host = normalise_host(hostname)
    settings = current_app.extensions["albedo.settings"]
    if host is None or "." not in host:
        raise TenantValidationError({"hostname": "must be a fully qualified hostname"})
    platform = settings.platform_domain
    if host == platform or host.endswith("." + platform):
        raise TenantValidationError({"hostname": "subdomains of the platform are given by slug"})
    if db.session.scalars(select(Domain.id).where(Domain.hostname == host)).first():
        raise TenantValidationError({"hostname": "is already in use"})
    domain = Domain(tenant=tenant, hostname=host, is_primary=False)
    db.session.add(domain)
    db.session.flush()
    return domain


def mark_domain_verified(domain: Domain) -> Domain:
    with cross_tenant(_DOMAINS):
        domain.verified_at = domain.verified_at or clock.now()
        domain.last_check_code = None  # verified (by DNS or by hand): nothing in the way
        db.session.flush()
    return domain


def set_primary_domain(domain: Domain) -> Domain:
    if not domain.verified:
        raise TenantValidationError({"hostname": "verify the domain before making it primary"})
    with cross_tenant(_DOMAINS):
        for other in domain.tenant.domains:
            if other.is_primary and other.id != domain.id:
                other.is_primary = False
        db.session.flush()  # the unique partial index allows one primary at a time
        domain.is_primary = True
        db.session.flush()
    return domain


def get_tenant(tenant_id: uuid.UUID) -> Tenant | None:
    return db.session.get(Tenant, tenant_id)


def get_by_slug(slug: str) -> Tenant | None:
    return db.session.scalars(select(Tenant).where(Tenant.slug == slug)).first()


def info_for(tenant: Tenant):
    """The snapshot that tenants.activate() takes (jobs, CLI, tests)."""
    return snapshot(tenant, current_app.extensions["albedo.settings"].platform_domain)


@contextmanager
def acting_as(tenant_id: uuid.UUID) -> Iterator[bool]:
    """Cross-tenant work, one tenant at a time: activate ``tenant_id`` (by id) in a fresh
    transaction. Yields False, without activating, when the tenant no longer exists."""
    from tenants.context import activate

    tenant = get_tenant(tenant_id)
    if tenant is None:
        yield False
        return
    info = info_for(tenant)
    db.session.rollback()  # what follows runs under the tenant's own isolation settings
    with activate(info):
        yield True
