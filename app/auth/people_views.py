"""People pages: a reseller's team and customers, invitations, one customer's account, and
the invitation link itself (choose a password). Thin: services do the work."""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from app import clock
from app.api.limits import auth_limit
from app.auth import invitations, people, users
from app.auth.account_forms import EmptyForm
from app.auth.models import Invitation
from app.auth.permissions import require_role
from app.auth.principal import ALL_SCOPES, Principal
from app.auth.service import UserValidationError
from app.errors import ApiError
from app.extensions import db
from tenants.context import current

bp = Blueprint("people", __name__)

LISTS = {"RESELLER": "people.team", "USER": "people.customers"}


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    name = StringField("Name (optional)", validators=[Optional(), Length(max=120)])
    role = HiddenField(validators=[DataRequired()])


class AcceptForm(FlaskForm):
    name = StringField("Your name", validators=[Optional(), Length(max=120)])
    password = PasswordField("Choose a password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", message="The two passwords differ.")])


def _principal() -> Principal:
    return Principal("user", current().id, current_user.id, current_user.role, ALL_SCOPES)


def _list_page(role: str, form: InviteForm | None = None, status: int = 200):
    form = form or InviteForm(role=role)
    q = request.args.get("q", "")[:100]
    pending = db.session.scalars(invitations.invitations_query().where(
        Invitation.role == role).order_by(Invitation.created_at.desc()).limit(200)).all()
    return render_template("people/list.html", role=role, rows=people.people(role, q), q=q,
                           invitations=pending, form=form, action_form=EmptyForm(),
                           now=clock.now()), status


@bp.get("/people/team")
@require_role("RESELLER")
def team():
    return _list_page("RESELLER")


@bp.get("/people/customers")
@require_role("RESELLER")
def customers():
    return _list_page("USER")


@bp.post("/people/invite")
@require_role("RESELLER")
def invite():
    form = InviteForm()
    role = form.role.data if form.role.data in LISTS else "USER"
    if not form.validate_on_submit():
        return _list_page(role, form, 422)
    try:
        invitations.invite(form.email.data, role, name=form.name.data or "",
                           actor=current_user._get_current_object())
    except ApiError as exc:
        db.session.rollback()
        field_errors = exc.details.get("fields", {})
        form.email.errors = [field_errors.get("email") or exc.message]
        return _list_page(role, form, exc.status if exc.status < 500 else 422)
    db.session.commit()
    flash(f"Invitation sent to {form.email.data.strip().lower()}.")
    return redirect(url_for(LISTS[role]))


@bp.post("/people/users/<uuid:user_id>/<any(deactivate, reactivate):action>")
@require_role("RESELLER")
def user_status(user_id: uuid.UUID, action: str):
    if not EmptyForm().validate_on_submit():
        abort(400)
    principal = _principal()
    try:
        user = users.change(users.get_for_update(user_id, principal), principal, None,
                            action == "reactivate")
    except ApiError as exc:
        db.session.rollback()
        if exc.status == 404:
            abort(404)
        flash(exc.message)
        return redirect(request.referrer or url_for("people.customers"))
    db.session.commit()
    flash(f"{user.email} {'can sign in again' if user.is_active else 'was deactivated'}.")
    return redirect(url_for(LISTS[user.role]))


@bp.post("/people/invitations/<uuid:invitation_id>/<any(resend, revoke):action>")
@require_role("RESELLER")
def invitation_action(invitation_id: uuid.UUID, action: str):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        invitation = invitations.get(invitation_id)
        getattr(invitations, action)(invitation, actor=current_user._get_current_object())
    except ApiError as exc:
        db.session.rollback()
        if exc.status == 404:
            abort(404)
        flash(exc.message)
        return redirect(url_for("people.customers"))
    db.session.commit()
    flash(f"Invitation to {invitation.email} "
          f"{'sent again' if action == 'resend' else 'withdrawn'}.")
    return redirect(url_for(LISTS[invitation.role]))


@bp.get("/people/customers/<uuid:customer_id>")
@require_role("RESELLER")
def customer(customer_id: uuid.UUID):
    from app.agents import usage
    from app.agents.service import Caller
    from app.web import charts

    try:
        user = people.customer(customer_id)
    except ApiError:
        abort(404)
    caller = Caller(user_id=current_user.id, role=current_user.role)
    days = usage.daily_totals(caller, "tenant", 30, customer_id=user.id)
    chart = charts.daily_bars(days, 30, value=lambda r: r.executions, label="Executions")
    return render_template("people/customer.html", customer=user, chart=chart,
                           action_form=EmptyForm(), **people.customer_overview(user))


@bp.after_request
def _keep_link_tokens_private(response):
    # The invitation token is in the URL: no Referer to a hosted logo, no shared cache copy.
    if request.endpoint == "people.accept_invitation":
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/invitation/<token>", methods=["GET", "POST"])
@auth_limit()
def accept_invitation(token: str):
    try:
        invitation = invitations.for_token(token)
    except invitations.InvitationLinkError as exc:
        return render_template("people/invitation_problem.html", message=exc.message), \
            exc.status
    form = AcceptForm(name=invitation.name)
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            user = invitations.accept(token, form.password.data, form.name.data or "")
        except invitations.InvitationLinkError as exc:
            db.session.rollback()
            return render_template("people/invitation_problem.html",
                                   message=exc.message), exc.status
        except (UserValidationError, ApiError) as exc:
            db.session.rollback()
            details = getattr(exc, "details", {}) or {}
            errors = {k: v for k, v in details.items() if k in ("password", "name")} or {
                "form": getattr(exc, "message", None) or str(exc)}
        else:
            db.session.commit()
            flash(f"Your password is set: sign in as {user.email}.")
            return redirect(url_for("auth.login"))
    elif form.is_submitted():
        errors = {name: messages[0] for name, messages in form.errors.items() if messages}
    return render_template("people/invitation.html", form=form, errors=errors,
                           invitation=invitation), 400 if errors else 200


@bp.post("/people/customers/<uuid:customer_id>/<any(ban, unban):action>")
@require_role("RESELLER")
def customer_ban(customer_id: uuid.UUID, action: str):
    """Ban a customer (its licenses validate as BANNED) or lift the ban; audited."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        user = users.change(people.customer(customer_id), _principal(), None, None,
                            banned=action == "ban")
    except ApiError as exc:
        db.session.rollback()
        if exc.status == 404:
            abort(404)
        flash(exc.message)
        return redirect(url_for("people.customer", customer_id=customer_id))
    db.session.commit()
    flash(f"{user.email} is banned: their licenses answer BANNED." if user.banned_at
          else f"{user.email} is no longer banned.")
    return redirect(url_for("people.customer", customer_id=customer_id))
