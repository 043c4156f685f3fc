"""Sign-in-as pages and the request hooks that keep it honest: a banner on every page, and
password, key, sign-in method and billing changes refused while it lasts.

The service (app.auth.impersonation) decides and audits; this module moves sessions.
"""

from __future__ import annotations

import uuid

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user, user_logged_in, user_logged_out
from markupsafe import Markup

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
    target = current_user._get_current_object()
    staff = impersonation.end(record, target)
    db.session.commit()
    g.sign_in_as_ending = True
    session.pop(impersonation.SESSION_KEY, None)
    if staff is not None:
        login_user(staff)
        return redirect(url_for("people.customer", customer_id=target.id))
    logout_user()
    return redirect(record.get("return_url") or url_for("auth.login"))


def _refuse_changes():
    if request.headers.get("Authorization"):
        return None  # an API call names its own credentials; the session does not act
    if impersonation.active() is None:
        return None
    g.sign_in_as = True
    if problem := impersonation.refusal(request.method, request.endpoint):
        raise problem
    return None


def _banner() -> Markup:
    record = impersonation.active()
    if not record:
        return Markup("")
    # An autoescaped template's output: already safe HTML, marked so it is not escaped twice.
    html = render_template("people/_sign_in_as_banner.html", record=record, form=EmptyForm())
    return Markup(html)  # noqa: S704


def _flashed_with_banner(with_categories: bool = False, category_filter=()):
    # The layout shows flashed messages on every page; the banner rides along as the first,
    # so no page (and no layout) needs to know about sign-in-as.
    messages = list(get_flashed_messages(with_categories=with_categories,
                                         category_filter=category_filter))
    if not category_filter and (banner := _banner()):
        messages.insert(0, ("sign_in_as", banner) if with_categories else banner)
    return messages


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
    app.register_blueprint(bp)
    app.before_request(_refuse_changes)
    app.context_processor(lambda: {"get_flashed_messages": _flashed_with_banner})
    user_logged_out.connect(_on_logged_out, app)
    user_logged_in.connect(_on_logged_in, app)
