"""The audit log, read-only: resellers see their tenant's, platform admins everyone's."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth.audit import ACTIONS
from app.auth.guard import current_principal, require
from app.auth.models import AuditEvent
from tenants.models import Tenant

blp = Blueprint("audit", __name__, description="Who did what, when, from where")


class AuditArgsSchema(CursorArgsSchema):
    action = fields.String(validate=validate.OneOf(ACTIONS))
    tenant = fields.String(metadata={"description": "Platform admins: one tenant's slug."})
    actor = fields.String(validate=validate.Length(max=254), metadata={
        "description": "Only events by this person (email, or part of it)."})
    since = fields.Date(metadata={"description": "From this UTC day (inclusive)."})
    until = fields.Date(metadata={"description": "To this UTC day (inclusive)."})


class AuditEventSchema(Schema):
    id = fields.UUID()
    created_at = fields.AwareDateTime()
    tenant_id = fields.UUID()
    actor_user_id = fields.UUID(allow_none=True)
    actor_label = fields.String()
    action = fields.String()
    target_type = fields.String(allow_none=True)
    target_id = fields.String(allow_none=True)
    ip_address = fields.String(allow_none=True)
    details = fields.Dict()


def audit_query(principal, action: str | None = None, tenant_slug: str | None = None,
                actor: str | None = None, since: date | None = None,
                until: date | None = None):
    stmt = select(AuditEvent)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if actor and actor.strip():
        stmt = stmt.where(func.lower(AuditEvent.actor_label).contains(
            actor.strip().lower(), autoescape=True))
    if since:
        stmt = stmt.where(AuditEvent.created_at >= datetime.combine(since, time.min, UTC))
    if until:
        stmt = stmt.where(AuditEvent.created_at < datetime.combine(
            until + timedelta(days=1), time.min, UTC))
    if principal.is_admin:
        # Platform admins read every tenant's log: an explicit, named opt-in.
        stmt = stmt.execution_options(cross_tenant="platform admin reads the audit log")
        if tenant_slug:
            stmt = stmt.join(Tenant, Tenant.id == AuditEvent.tenant_id).where(
                Tenant.slug == tenant_slug)
    return stmt


@blp.route("")
class AuditEvents(MethodView):
    @blp.arguments(AuditArgsSchema, location="query")
    @blp.response(200, page_of(AuditEventSchema))
    @require(roles=("RESELLER", "ADMIN"))
    def get(self, args):
        """The audit log, newest first (sign-ins, API keys, roles, suspensions, domains)."""
        stmt = audit_query(current_principal(), args.get("action"), args.get("tenant"),
                           args.get("actor"), args.get("since"), args.get("until"))
        page = paginate(stmt, cursor=args["cursor"], limit=args["limit"],
                        order_by=(AuditEvent.created_at, AuditEvent.id))
        return {"items": page.items, "next_cursor": page.next_cursor}
