"""A reseller's own custom domains: the list, and "verify now" by a real DNS lookup.

The platform operator attaches domains (tenants.platform) and may still mark one verified
by hand (an override, audited like every verification by app.auth.audit_watch). Here the
reseller proves control itself: its domain's TXT record holds the domain's own token
(tenants.verification), checked when it asks and, for domains still waiting, in the
background (:func:`recheck_pending`, a periodic task), so publishing the record is enough.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, select

from app import clock
from app.errors import ApiError
from app.extensions import db
from tenants import verification
from tenants.context import current
from tenants.models import Domain, Tenant
from tenants.service import acting_as, mark_domain_verified

log = logging.getLogger(__name__)

# Pending domains younger than this are re-checked in the background; older ones wait for
# "Verify now" (a record nobody published in a week is not worth a lookup every few minutes).
RECHECK_FOR = timedelta(days=7)

Lookup = Callable[[str], Iterable[str]]


def own_domains_query() -> Select[tuple[Domain]]:
    """The current reseller's custom domains (unordered: pages and the API choose)."""
    return select(Domain).where(Domain.tenant_id == current().id)


def own_domains() -> list[Domain]:
    """The current reseller's custom domains, by hostname."""
    return list(db.session.scalars(own_domains_query().order_by(Domain.hostname)))


def own_domain(domain_id: uuid.UUID) -> Domain:
    """One of the current reseller's domains; another reseller's is simply not found."""
    domain = db.session.scalars(select(Domain).where(
        Domain.id == domain_id, Domain.tenant_id == current().id)).first()
    if domain is None:
        raise ApiError(404, "domain_not_found", "No such domain.")
    return domain


def reseller_domain(tenant: Tenant, domain_id: uuid.UUID) -> Domain:
    """One domain of ``tenant``, for the platform operator (its pages and API)."""
    domain = next((d for d in tenant.domains if d.id == domain_id), None)
    if domain is None:
        raise ApiError(404, "domain_not_found", "No such domain for this reseller.")
    return domain


def checked(domain: Domain, outcome: verification.Outcome) -> dict[str, Any]:
    """A domain with what "verify now" found, for the APIs' DomainCheckSchema."""
    return {"id": domain.id, "hostname": domain.hostname, "is_primary": domain.is_primary,
            "verified": domain.verified, "verification_token": domain.verification_token,
            "last_checked_at": domain.last_checked_at,
            "last_check_code": domain.last_check_code,
            "problem_code": outcome.code, "problem": outcome.problem}


def verify(domain: Domain, lookup_txt: Lookup | None = None) -> verification.Outcome:
    """Look the domain's TXT record up now; a match marks it verified (the caller commits).

    The outcome stays on the row (when, and the problem's code) so a check nobody watched,
    the background one, is still seen on the pages and in the API."""
    if domain.verified:
        return verification.Outcome(True)
    outcome = verification.check(domain, lookup_txt)
    domain.last_checked_at, domain.last_check_code = clock.now(), outcome.code
    if outcome.verified:
        mark_domain_verified(domain)
    return outcome


def recheck_pending(lookup_txt: Lookup | None = None) -> int:
    """Check every active reseller's recent pending domains; returns how many were verified.

    One tenant at a time under its own isolation (a pending domain is its tenant's alone),
    each committed on its own so one slow DNS server does not hold the others back."""
    since = clock.now() - RECHECK_FOR
    tenant_ids = db.session.scalars(select(Tenant.id).where(
        Tenant.kind == "reseller", Tenant.status == "active")).all()
    verified = 0
    for tenant_id in tenant_ids:
        with acting_as(tenant_id) as found:
            if not found:
                continue
            pending = db.session.scalars(select(Domain).where(
                Domain.tenant_id == tenant_id, Domain.verified_at.is_(None),
                Domain.created_at >= since)).all()
            for domain in pending:
                if verify(domain, lookup_txt).verified:
                    verified += 1
                    log.info("custom domain %s verified by its DNS record", domain.hostname)
            db.session.commit()
    return verified
