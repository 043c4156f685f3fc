"""Platform endpoints (ADMIN on the platform domain): resellers, their domains and users."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth.guard import current_principal, require
from app.auth.models import User
from app.auth.people_api import InvitationSchema, InvitationStateSchema
from app.extensions import db
from tenants import domains, platform, platform_people
from tenants.models import Tenant
from tenants.schemas import (
    DomainCheckSchema,
    DomainCreateSchema,
    DomainSchema,
    ResellerCreateSchema,
    ResellerSchema,
    TenantUserSchema,
)
from tenants.urls import base_url

blp = Blueprint("platform_resellers", __name__,
                description="Platform operators: onboard and manage resellers")
ADMIN = ("ADMIN",)


def _actor() -> User:
    return db.session.get(User, current_principal().user_id)


def _view(tenant: Tenant) -> dict:
    from tenants.service import info_for

    return {**{c: getattr(tenant, c) for c in (
        "id", "slug", "name", "status", "display_name", "primary_color", "accent_color",
        "support_email", "license_key_prefix", "signup_enabled", "created_at")},
        "base_url": base_url(info_for(tenant)),
        "domains": list(tenant.domains)}


@blp.route("")
class Resellers(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, page_of(ResellerSchema))
    @require(roles=ADMIN)
    def get(self, args):
        """Every reseller on the platform, newest first."""
        page = paginate(platform.resellers_query(), cursor=args["cursor"], limit=args["limit"],
                        order_by=(Tenant.created_at, Tenant.id))
        return {"items": [_view(t) for t in page.items], "next_cursor": page.next_cursor}

    @blp.arguments(ResellerCreateSchema)
    @blp.response(201, ResellerSchema)
    @require(roles=ADMIN)
    def post(self, body):
        """Onboard a reseller: it is served at <slug>.<platform domain> at once.

        With `owner_email`, the owner is emailed a single-use link (7 days) to choose a
        password; see `/platform/resellers/{id}/invitations`.
        """
        owner_email = body.pop("owner_email", None)
        tenant = platform.onboard(body, _actor())
        if owner_email:
            platform_people.invite_owner(tenant, owner_email, _actor())
        view = _view(tenant)
        db.session.commit()
        return view


@blp.route("/<uuid:tenant_id>")
class Reseller(MethodView):
    @blp.response(200, ResellerSchema)
    @require(roles=ADMIN)
    def get(self, tenant_id: uuid.UUID):
        """One reseller with its domains."""
        return _view(platform.get_reseller(tenant_id))


@blp.route("/<uuid:tenant_id>/<any(suspend, reinstate):action>")
class Status(MethodView):
    @blp.response(200, ResellerSchema)
    @require(roles=ADMIN)
    def post(self, tenant_id: uuid.UUID, action: str):
        """Suspend a reseller (its domains answer 403) or reinstate it."""
        status = "suspended" if action == "suspend" else "active"
        tenant = platform.change_status(platform.get_reseller(tenant_id), status, _actor())
        db.session.commit()
        return _view(tenant)


@blp.route("/<uuid:tenant_id>/domains")
class Domains(MethodView):
    @blp.arguments(DomainCreateSchema)
    @blp.response(201, DomainSchema)
    @require(roles=ADMIN)
    def post(self, body, tenant_id: uuid.UUID):
        """Attach a custom domain; unverified domains are not served."""
        domain = platform.attach_domain(platform.get_reseller(tenant_id), body["hostname"],
                                        body["verified"], body["primary"], _actor())
        db.session.commit()
        return domain


@blp.route("/<uuid:tenant_id>/domains/<uuid:domain_id>")
class DomainItem(MethodView):
    @blp.response(204)
    @require(roles=ADMIN)
    def delete(self, tenant_id: uuid.UUID, domain_id: uuid.UUID):
        """Detach a custom domain."""
        platform.detach_domain(platform.get_reseller(tenant_id), domain_id, _actor())
        db.session.commit()


@blp.route("/<uuid:tenant_id>/domains/<uuid:domain_id>/verify")
class VerifyDomain(MethodView):
    @blp.response(200, DomainCheckSchema)
    @require(roles=ADMIN)
    def post(self, tenant_id: uuid.UUID, domain_id: uuid.UUID):
        """Check a reseller's domain in DNS now, as the reseller's own "verify now" does.

        `verified` true once its TXT record holds its value; otherwise `problem_code` and
        `problem` say what was found. Marking a domain verified without the DNS check stays
        possible when attaching it (`verified: true`, an audited override).
        """
        domain = domains.reseller_domain(platform.get_reseller(tenant_id), domain_id)
        outcome = domains.verify(domain)
        db.session.commit()
        return domains.checked(domain, outcome)


@blp.route("/<uuid:tenant_id>/users")
class Users(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, page_of(TenantUserSchema))
    @require(roles=ADMIN)
    def get(self, args, tenant_id: uuid.UUID):
        """The reseller's staff and customers."""
        page = paginate(platform.users_of(platform.get_reseller(tenant_id)),
                        cursor=args["cursor"], limit=args["limit"],
                        order_by=(User.created_at, User.id))
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/<uuid:tenant_id>/invitations")
class Invitations(MethodView):
    @blp.arguments(InvitationStateSchema, location="query")
    @blp.response(200, InvitationSchema(many=True))
    @require(roles=ADMIN)
    def get(self, args, tenant_id: uuid.UUID):
        """The reseller's invitations (its owner's included), newest first, at most 200."""
        return platform_people.invitations_of(platform.get_reseller(tenant_id),
                                              None if args["state"] == "all" else "pending")


@blp.route("/<uuid:tenant_id>/invitations/<uuid:invitation_id>/<any(resend, revoke):action>")
class InvitationAction(MethodView):
    @blp.response(200, InvitationSchema)
    @require(roles=ADMIN)
    def post(self, tenant_id: uuid.UUID, invitation_id: uuid.UUID, action: str):
        """Send the invitation again (a fresh link) or withdraw it. Audited in both logs."""
        tenant = platform.get_reseller(tenant_id)
        invitation = platform_people.act_on_invitation(tenant, invitation_id, action, _actor())
        db.session.commit()
        return platform_people.reload(tenant, invitation)
