"""Sign-in-as pages and the request hooks that keep it honest: a banner on every page (the
layout includes it), password, key, sign-in method and billing changes refused while it
lasts, and its end when the time limit (ALBEDO_SIGN_IN_AS_MINUTES) has passed.

The service (app.auth.impersonation) decides and audits; this module moves sessions.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user, user_logged_in, user_logged_out
from werkzeug.wrappers import Response

from app.auth import impersonation
from app.auth.account_forms import EmptyForm
from app.auth.permissions import require_role
from app.errors import ApiError
from app.extensions import db
from tenants import platform as platform_service
from tenants.service import info_for
from tenants.urls import tenant_url_for

bp = Blueprint("sign_in_as", __name__)


def _checked_form() -> None:
    if not EmptyForm().validate_on_submit():
        abort(400)


@bp.post("/people/customers/<uuid:customer_id>/sign-in-as")
@require_role("RESELLER")
def start(customer_id: uuid.UUID):
    _checked_form()
    staff = current_user._get_current_object()
    try:
        customer = impersonation.customer_for_support(staff, customer_id)
    except ApiError as exc:
        if exc.status == 404:
            abort(404)
        flash(exc.message)
        return redirect(url_for("people.customer", customer_id=customer_id))
    record = impersonation.start_for_customer(staff, customer)
    db.session.commit()
    session[impersonation.SESSION_KEY] = record
    login_user(customer)
    return redirect(url_for("web.home"))


@bp.post("/admin/resellers/<uuid:tenant_id>/users/<uuid:user_id>/sign-in-as")
@require_role("ADMIN")
def operator_start(tenant_id: uuid.UUID, user_id: uuid.UUID):
    _checked_form()
    try:
        tenant = info_for(platform_service.get_reseller(tenant_id))
        staff = impersonation.staff_for_operator(tenant, user_id)
    except ApiError as exc:
        if exc.status == 404:
            abort(404)
        flash(exc.message)
        return redirect(url_for("tenants_pages.reseller", tenant_id=tenant_id))
    back = tenant_url_for("tenants_pages.reseller", tenant_id=tenant_id)  # the platform's URL
    token = impersonation.start_for_staff(current_user._get_current_object(), tenant, staff,
                                          back)
    db.session.commit()
    return redirect(tenant_url_for("sign_in_as.handoff", tenant=tenant, token=token))


@bp.get("/sign-in-as/<token>")
def handoff(token: str):
    try:
        staff, record = impersonation.accept_handoff(token)
    except ApiError as exc:
        return render_template("people/invitation_problem.html", message=exc.message,
                               title="This sign-in link does not work"), exc.status
    if current_user.is_authenticated:
        logout_user()
    session[impersonation.SESSION_KEY] = record
    login_user(staff)
    return redirect(url_for("web.home"))


@bp.post("/sign-in-as/end")
def end():
    _checked_form()
    record = impersonation.active()
    if record is None:
        return redirect(url_for("web.home"))
    return _finish(record, "ended")


def _finish(record: dict[str, Any], reason: str) -> Response:
    """End the sign-in-as (audited with ``reason``) and go back: staff to the customer's page,
    the operator to the platform (signed out here)."""
    target = current_user._get_current_object()
    staff = impersonation.end(record, target, reason=reason)
    db.session.commit()
    g.sign_in_as_ending = True
    session.pop(impersonation.SESSION_KEY, None)
    if reason == "time_limit":
        minutes = int(impersonation.time_limit().total_seconds() // 60)
        flash(f"Signing in as {record.get('target_email', 'the customer')} ended after its "
              f"{minutes}-minute limit.")
    if staff is not None:
        login_user(staff)
        return redirect(url_for("people.customer", customer_id=target.id))
    logout_user()
    return redirect(record.get("return_url") or url_for("auth.login"))


# Requests that are no page of their own (a stylesheet, the brand's images, the API, which
# never reads this session): they never end a sign-in-as, so the page that loads them is the
# one that says it ended.
_PASSIVE_BLUEPRINTS = frozenset({"assets"})
_PASSIVE_ENDPOINTS = frozenset({"static", "tenants_pages.brand_image"})


def _guard():
    if request.headers.get("Authorization"):
        return None  # an API call names its own credentials; the session does not act
    record = impersonation.active()
    if record is None:
        return None
    endpoint = request.endpoint or ""
    if impersonation.expired(record):
        if (endpoint in _PASSIVE_ENDPOINTS or request.path.startswith("/api/")
                or endpoint.rpartition(".")[0] in _PASSIVE_BLUEPRINTS):
            return None
        return _finish(record, "time_limit")
    g.sign_in_as = True
    if problem := impersonation.refusal(request.method, request.endpoint):
        raise problem
    return None


def _support_session() -> dict[str, Any] | None:
    """For the layout's banner: this session's sign-in-as with its end, or None."""
    record = impersonation.active()
    if not record:
        return None
    return {**record, "ends_at": impersonation.ends_at(record)}


def _on_logged_out(sender, user, **_extra) -> None:
    # Signing out while signed in as someone is an end too: record it, forget the record.
    record = session.get(impersonation.SESSION_KEY)
    if not record or g.get("sign_in_as_ending"):
        return
    session.pop(impersonation.SESSION_KEY, None)
    if user is not None and str(getattr(user, "id", "")) == record.get("target_id"):
        impersonation.end(record, user, reason="signed_out")
        db.session.commit()


def _on_logged_in(sender, user, **_extra) -> None:
    record = session.get(impersonation.SESSION_KEY)
    if record and record.get("target_id") != str(user.id):
        session.pop(impersonation.SESSION_KEY, None)


def init_app(app: Flask) -> None:
    # Read (and refused if out of range) at start, like every setting.
    minutes = impersonation.minutes_from(app.extensions["albedo.settings"].extra)
    app.extensions[impersonation.MINUTES_KEY] = minutes
    app.register_blueprint(bp)
    app.before_request(_guard)
    app.jinja_env.globals.update(support_session=_support_session, sign_in_as_minutes=minutes)
    user_logged_out.connect(_on_logged_out, app)
    user_logged_in.connect(_on_logged_in, app)
