"""The development outbox: platform admins read every email the platform has 'sent'."""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, render_template
from sqlalchemy import select

from app.auth.permissions import require_role
from app.email.models import OutboundEmail
from app.extensions import db
from tenants.models import Tenant

bp = Blueprint("email", __name__, url_prefix="/admin/outbox")
_REASON = "platform admin reads the email outbox of every tenant"


@bp.get("")
@require_role("ADMIN")
def outbox():
    rows = db.session.execute(
        select(OutboundEmail, Tenant.slug).join(Tenant, Tenant.id == OutboundEmail.tenant_id)
        .order_by(OutboundEmail.created_at.desc()).limit(200)
        .execution_options(cross_tenant=_REASON)).all()
    return render_template("admin/outbox.html", rows=rows)


@bp.get("/<email_id>")
@require_role("ADMIN")
def message(email_id: str):
    try:
        key = uuid.UUID(email_id)
    except ValueError:
        abort(404)
    email = db.session.scalars(select(OutboundEmail).where(OutboundEmail.id == key)
                               .execution_options(cross_tenant=_REASON)).first()
    if email is None:
        abort(404)
    return render_template("admin/outbox_message.html", email=email)
