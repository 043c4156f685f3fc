"""What platform operators do to resellers: list, onboard, suspend, domains, their users.

Tenant and Domain rows are platform tables; a reseller's users are tenant-scoped, so reading
them here is an explicit, named cross-tenant opt-in.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.auth import audit
from app.auth.models import User
from app.errors import ApiError
from app.extensions import db
from tenants.context import cross_tenant
from tenants.models import Domain, Tenant
from tenants.service import (
    Branding,
    TenantValidationError,
    add_domain,
    create_tenant,
    mark_domain_verified,
    set_primary_domain,
    set_status,
    update_branding,
)


def _invalid(exc: TenantValidationError) -> ApiError:
    return ApiError(422, "validation_failed", "The reseller could not be saved.",
                    {"fields": exc.details})


def resellers_query():
    return select(Tenant).where(Tenant.kind == "reseller")


def get_reseller(tenant_id: uuid.UUID) -> Tenant:
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None or tenant.kind != "reseller":
        raise ApiError(404, "not_found", "No such reseller.")
    return tenant


def onboard(data: dict, actor: User) -> Tenant:
    branding = Branding(**{k: data.get(k) for k in (
        "display_name", "logo_url", "primary_color", "accent_color", "support_email",
        "license_key_prefix")})
    try:
        tenant = create_tenant(data["slug"], data["name"], "reseller", branding)
    except TenantValidationError as exc:
        raise _invalid(exc) from None
    if "signup_enabled" in data:
        tenant.signup_enabled = data["signup_enabled"]
    audit.record("tenant_created", actor_user_id=actor.id, actor_label=actor.email,
                 target_type="tenant", target_id=tenant.id, slug=tenant.slug)
    return tenant


def change_branding(tenant: Tenant, data: dict) -> Tenant:
    fields = {k: v for k, v in data.items() if k != "signup_enabled"}
    try:
        update_branding(tenant, Branding(**fields))
    except TenantValidationError as exc:
        raise _invalid(exc) from None
    if "signup_enabled" in data:
        tenant.signup_enabled = data["signup_enabled"]
    return tenant


def change_status(tenant: Tenant, status: str, actor: User) -> Tenant:
    set_status(tenant, status)
    action = "tenant_suspended" if status == "suspended" else "tenant_reinstated"
    audit.record(action, actor_user_id=actor.id, actor_label=actor.email,
                 target_type="tenant", target_id=tenant.id, slug=tenant.slug)
    # The reseller's own log shows it too: they should see who suspended them and when.
    with cross_tenant("platform records a suspension in the reseller's audit log"):
        audit.record(action, actor_label="platform operator", target_type="tenant",
                     target_id=tenant.id, tenant_id=tenant.id)
        db.session.flush()
    return tenant


def attach_domain(tenant: Tenant, hostname: str, verified: bool, primary: bool,
                  actor: User | None) -> Domain:
    """Add a custom domain (``actor`` None: an operator at the command line)."""
    try:
        domain = add_domain(tenant, hostname)
        if verified or primary:
            mark_domain_verified(domain)
        if primary:
            set_primary_domain(domain)
    except TenantValidationError as exc:
        raise _invalid(exc) from None
    audit.record("domain_changed", actor_user_id=actor.id if actor else None,
                 actor_label=actor.email if actor else "command line", target_type="tenant",
                 target_id=tenant.id, hostname=domain.hostname, change="added")
    return domain


def detach_domain(tenant: Tenant, domain_id: uuid.UUID, actor: User) -> None:
    domain = next((d for d in tenant.domains if d.id == domain_id), None)
    if domain is None:
        raise ApiError(404, "not_found", "No such domain for this reseller.")
    db.session.delete(domain)
    audit.record("domain_changed", actor_user_id=actor.id, actor_label=actor.email,
                 target_type="tenant", target_id=tenant.id, hostname=domain.hostname,
                 change="removed")


def users_of(tenant: Tenant):
    return select(User).where(User.tenant_id == tenant.id).execution_options(
        cross_tenant="platform operator lists a reseller's users")
