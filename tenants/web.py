"""Per-request tenant resolution and cache invalidation, wired into the Flask app."""

from __future__ import annotations

from flask import Flask, current_app, g, has_app_context, request
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.errors import ApiError
from tenants.context import set_current
from tenants.hosts import normalise_host
from tenants.models import Domain, Tenant
from tenants.resolution import TenantResolver

# Endpoints answered on any host: probes reach a container by IP, not by tenant domain.
# /metrics too (app/ops/exporter.py): Prometheus scrapes by address; it needs a token.
HOST_INDEPENDENT_ENDPOINTS = frozenset({"health.healthz", "health.readyz",
                                        "ops_metrics.metrics_endpoint"})


def init_app(app: Flask) -> None:
    settings = app.extensions["albedo.settings"]
    from app.extensions import db
    from app.redis import get_redis

    def session_factory() -> Session:
        return Session(bind=db.engine)

    resolver = TenantResolver(session_factory, settings.platform_domain,
                              settings.tenant_cache_ttl, redis_getter=get_redis)
    app.extensions["albedo.tenant_resolver"] = resolver
    # The DNS server custom domains are checked with: read (and refused if malformed) at start.
    from tenants import verification

    app.extensions[verification.RESOLVER_KEY] = verification.resolver_from(settings.extra)
    app.before_request(_resolve_request_tenant)
    app.teardown_request(_forget_request_tenant)
    _install_invalidation()


def resolver() -> TenantResolver:
    return current_app.extensions["albedo.tenant_resolver"]


def _resolve_request_tenant() -> None:
    if request.endpoint in HOST_INDEPENDENT_ENDPOINTS:
        return
    resolve_request_tenant()


def resolve_request_tenant() -> None:
    """Set the request's tenant from its Host, or raise the answer an unknown or suspended
    host gets (host-independent endpoints call it when they answer as any page would)."""
    host = normalise_host(request.host)
    tenant = resolver().resolve(host) if host else None
    if tenant is None:
        raise ApiError(404, "tenant_not_found", "No site is served at this address.")
    if not tenant.is_active:
        raise ApiError(403, "tenant_suspended", "This site is suspended.")
    set_current(tenant)
    g.tenant = tenant


def confirm_tenant_generation():
    """The rate budgets' piggyback: the tenant cache's generation, read in the same round trip
    as the request's budgets. When another process changed a tenant (a suspension, a domain),
    this request's tenant is resolved again at once instead of within the cache's second."""
    from app.api.budgets import Piggyback
    from tenants.resolution import GENERATION_KEY

    if g.get("tenant") is None:
        return None

    def settle(values: list[str] | None) -> None:
        if values is not None and resolver().observe_generation(int(values[0])):
            _resolve_request_tenant()

    return Piggyback((GENERATION_KEY,), settle)


def _forget_request_tenant(exc: BaseException | None = None) -> None:
    set_current(None)


_CHANGED = "albedo_tenants_changed"
_installed = False


def _install_invalidation() -> None:
    global _installed
    if _installed:
        return

    @event.listens_for(Session, "after_flush")
    def _note_changes(session, flush_context):
        for obj in (*session.new, *session.dirty, *session.deleted):
            if isinstance(obj, Tenant | Domain):
                session.info[_CHANGED] = True
                return

    @event.listens_for(Session, "after_commit")
    def _invalidate(session):
        if session.info.pop(_CHANGED, False) and has_app_context():
            current_app.extensions["albedo.tenant_resolver"].invalidate()

    @event.listens_for(Session, "after_rollback")
    def _discard(session):
        session.info.pop(_CHANGED, None)

    _installed = True
