"""The platform operator's system page (ADMIN, platform domain only)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm

from app.auth.permissions import require_role
from app.errors import ApiError
from app.extensions import db
from app.ops import system

bp = Blueprint("ops_system", __name__)


class ActionForm(FlaskForm):
    pass


@bp.get("/admin/system")
@require_role("ADMIN")
def system_page():
    return render_template("ops/system.html", data=system.overview(), form=ActionForm())


@bp.post("/admin/system/failed/<any(job, email, delivery, execution):kind>/<unit_id>/"
         "<any(retry, discard):action>")
@require_role("ADMIN")
def unit_action(kind: str, unit_id: str, action: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        (system.retry if action == "retry" else system.discard)(kind, unit_id[:64])
        done = "queued again" if action == "retry" else "discarded"
        flash(f"{kind.capitalize()} {unit_id[:12]}… {done}.")
    except ApiError as exc:
        db.session.rollback()
        flash(exc.message)
    return redirect(url_for(".system_page"))
