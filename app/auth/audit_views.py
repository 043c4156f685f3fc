"""The audit log page for resellers (their tenant) and platform admins (every tenant): one
sentence per event, filtered by actor, action and date."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template, request
from flask_login import current_user

from app.api.pagination import paginate
from app.auth.audit import ACTIONS
from app.auth.audit_api import audit_query
from app.auth.audit_text import describe
from app.auth.models import AuditEvent
from app.auth.permissions import require_role
from app.auth.principal import ALL_SCOPES, Principal
from tenants.context import current

bp = Blueprint("audit_page", __name__, url_prefix="/audit")


def _day(name: str) -> tuple[date | None, str | None]:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None, None
    try:
        return date.fromisoformat(raw), None
    except ValueError:
        return None, "Use a date such as 2026-11-30."


@bp.get("")
@require_role("RESELLER", "ADMIN")
def index():
    principal = Principal("user", current().id, current_user.id, current_user.role, ALL_SCOPES)
    action = request.args.get("action") if request.args.get("action") in ACTIONS else None
    actor = request.args.get("actor", "")[:254]
    since, since_error = _day("since")
    until, until_error = _day("until")
    filters = {k: v for k, v in (("action", action), ("actor", actor),
                                 ("since", request.args.get("since", "")),
                                 ("until", request.args.get("until", "")),
                                 ("tenant", request.args.get("tenant", ""))) if v}
    page = paginate(audit_query(principal, action, request.args.get("tenant") or None,
                                actor, since, until),
                    cursor=request.args.get("cursor"), limit=50,
                    order_by=(AuditEvent.created_at, AuditEvent.id))
    lines = describe(page.items, cross=principal.is_admin)
    choices = sorted(((a, a.replace("_", " ").capitalize()) for a in ACTIONS),
                     key=lambda c: c[1])
    return render_template("auth/audit.html", page=page, lines=lines, actions=choices,
                           action=action, actor=actor, filters=filters,
                           errors={"since": since_error, "until": until_error}), \
        400 if since_error or until_error else 200
