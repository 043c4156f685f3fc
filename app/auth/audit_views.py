"""The audit log page for resellers (their tenant) and platform admins (every tenant)."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user

from app.api.pagination import paginate
from app.auth.audit import ACTIONS
from app.auth.audit_api import audit_query
from app.auth.models import AuditEvent
from app.auth.permissions import require_role
from app.auth.principal import ALL_SCOPES, Principal
from tenants.context import current

bp = Blueprint("audit_page", __name__, url_prefix="/audit")


@bp.get("")
@require_role("RESELLER", "ADMIN")
def index():
    principal = Principal("user", current().id, current_user.id, current_user.role, ALL_SCOPES)
    action = request.args.get("action") if request.args.get("action") in ACTIONS else None
    page = paginate(audit_query(principal, action, request.args.get("tenant") or None),
                    cursor=request.args.get("cursor"), limit=50,
                    order_by=(AuditEvent.created_at, AuditEvent.id))
    return render_template("auth/audit.html", page=page, actions=ACTIONS, action=action)
