"""The tenant serving this domain: its public branding (for widgets and embedded agents),
and, for its reseller staff, the branding to change and its custom domains to verify."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth.guard import require
from app.extensions import db
from tenants import domains, platform
from tenants.context import current
from tenants.models import Domain, Tenant
from tenants.schemas import (
    BrandingUpdateSchema,
    DomainCheckSchema,
    OwnDomainSchema,
    TenantBrandingSchema,
)
from tenants.service import info_for
from tenants.urls import base_url

blp = Blueprint("tenant", __name__, description="The tenant serving this domain")


@blp.route("")
class CurrentTenant(MethodView):
    @blp.response(200, TenantBrandingSchema)
    def get(self):
        """The branding of the tenant that serves this domain.

        Public: a widget embedded on a customer's site uses it to show the reseller's name
        and colours. An unknown domain answers 404 `tenant_not_found`.
        """
        tenant = current()
        return {**tenant.__dict__, "base_url": base_url(tenant)}

    @blp.arguments(BrandingUpdateSchema)
    @blp.response(200, TenantBrandingSchema)
    @require(roles=("RESELLER",))
    def patch(self, body):
        """Change this reseller's branding (name, logo, colours, support email, key prefix).

        Only the reseller's staff may; pages, emails and license keys follow at once.
        """
        tenant = platform.change_branding(db.session.get(Tenant, current().id), body)
        db.session.commit()
        info = info_for(tenant)
        return {**info.__dict__, "base_url": base_url(info)}


@blp.route("/domains")
class OwnDomains(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, page_of(OwnDomainSchema))
    @require(roles=("RESELLER",))
    def get(self, args):
        """Your custom domains, newest first, each with the DNS TXT record (name and value)
        that proves it is yours. The platform adds them."""
        page = paginate(domains.own_domains_query(), cursor=args["cursor"],
                        limit=args["limit"], order_by=(Domain.created_at, Domain.id))
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/domains/<uuid:domain_id>/verify")
class VerifyDomain(MethodView):
    @blp.response(200, DomainCheckSchema)
    @require(roles=("RESELLER",))
    def post(self, domain_id: uuid.UUID):
        """Verify now: look the domain's TXT record up in DNS.

        Answers the domain with `verified` true once the record holds its value; otherwise
        `problem_code` and `problem` say what was found (no record yet, a different value,
        DNS not answering in time, or a failed lookup). Pending domains are also checked in
        the background during their first week. Another reseller's domain is a 404.
        """
        domain = domains.own_domain(domain_id)
        outcome = domains.verify(domain)
        db.session.commit()
        return domains.checked(domain, outcome)
