"""Pages: platform admins manage resellers; resellers edit their own branding."""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app import clock
from app.auth.permissions import require_role
from app.errors import ApiError
from app.extensions import db
from tenants import platform, platform_people
from tenants.context import current
from tenants.models import Tenant
from tenants.service import info_for
from tenants.urls import base_url

bp = Blueprint("tenants_pages", __name__)


class BrandingForm(FlaskForm):
    display_name = StringField("Display name", validators=[DataRequired(), Length(max=120)])
    logo_url = StringField("Logo URL (https://…)", validators=[Optional(), Length(max=500)])
    primary_color = StringField("Primary colour", validators=[DataRequired()])
    accent_color = StringField("Accent colour", validators=[DataRequired()])
    support_email = EmailField("Support email", validators=[Optional()])
    license_key_prefix = StringField("License key prefix", validators=[DataRequired()])
    signup_enabled = BooleanField("Customers may sign up on this site")


class ResellerForm(FlaskForm):
    slug = StringField("Slug (the subdomain)", validators=[DataRequired(), Length(max=32)])
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    owner_email = EmailField("Owner's email (gets the invitation)",
                             validators=[DataRequired(), Length(max=254)])


class DomainForm(FlaskForm):
    hostname = StringField("Hostname", validators=[DataRequired(), Length(max=253)])
    verified = BooleanField("DNS checked: mark verified")
    primary = BooleanField("Make primary")


class ActionForm(FlaskForm):
    pass


def _show_errors(form: FlaskForm, exc: ApiError) -> None:
    """Put a service's per-field validation errors next to the form's fields."""
    db.session.rollback()
    for name, message in exc.details.get("fields", {}).items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [message]


@bp.route("/settings/branding", methods=["GET", "POST"])
@require_role("RESELLER")
def branding():
    tenant = db.session.get(Tenant, current().id)
    form = BrandingForm(obj=tenant)
    status = 200
    if form.validate_on_submit():
        data = {k: (v or None) if k in ("logo_url", "support_email") else v
                for k, v in form.data.items() if k != "csrf_token"}
        try:
            platform.change_branding(tenant, data)
            db.session.commit()
            flash("Branding saved.")
            return redirect(url_for(".branding"))
        except ApiError as exc:
            _show_errors(form, exc)
            status = 422
    elif form.is_submitted():
        status = 422
    return render_template("tenants/branding.html", form=form), status


@bp.route("/admin/resellers", methods=["GET", "POST"])
@require_role("ADMIN")
def resellers():
    form = ResellerForm()
    status = 200
    if form.validate_on_submit():
        try:
            tenant = platform.onboard({"slug": form.slug.data, "name": form.name.data},
                                      current_user)
            platform_people.invite_owner(tenant, form.owner_email.data, current_user)
            db.session.commit()
            flash(f"{tenant.display_name} is ready; its owner was emailed an invitation.")
            return redirect(url_for(".reseller", tenant_id=tenant.id))
        except ApiError as exc:
            _show_errors(form, exc)
            if exc.details.get("fields", {}).get("email"):
                form.owner_email.errors = [exc.details["fields"]["email"]]
            status = 422
    elif form.is_submitted():
        status = 422
    rows = db.session.scalars(platform.resellers_query().order_by(Tenant.created_at.desc())
                              .limit(500)).all()
    return render_template("tenants/resellers.html", form=form, rows=rows,
                           url_of=lambda t: base_url(info_for(t))), status


@bp.route("/admin/resellers/<uuid:tenant_id>", methods=["GET", "POST"])
@require_role("ADMIN")
def reseller(tenant_id: uuid.UUID):
    try:
        tenant = platform.get_reseller(tenant_id)
    except ApiError:
        abort(404)
    form = DomainForm()
    status = 200
    if form.validate_on_submit():
        try:
            platform.attach_domain(tenant, form.hostname.data, form.verified.data,
                                   form.primary.data, current_user)
            db.session.commit()
            return redirect(url_for(".reseller", tenant_id=tenant.id))
        except ApiError as exc:
            _show_errors(form, exc)
            form.hostname.errors = form.hostname.errors or [exc.message]
            status = 422
    users = db.session.scalars(platform.users_of(tenant).limit(200)).all()
    return render_template("tenants/reseller.html", tenant=tenant, form=form, users=users,
                           action_form=ActionForm(), url=base_url(info_for(tenant)),
                           invitations=platform_people.invitations_of(tenant),
                           now=clock.now()), status


@bp.post("/admin/resellers/<uuid:tenant_id>/invitations/<uuid:invitation_id>/"
         "<any(resend, revoke):action>")
@require_role("ADMIN")
def reseller_invitation(tenant_id: uuid.UUID, invitation_id: uuid.UUID, action: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        invitation = platform_people.act_on_invitation(platform.get_reseller(tenant_id),
                                                       invitation_id, action, current_user)
        email = invitation.email
        db.session.commit()
    except ApiError as exc:
        db.session.rollback()
        if exc.status == 404:
            abort(404)
        flash(exc.message)
    else:
        flash(f"Invitation to {email} {'sent again' if action == 'resend' else 'withdrawn'}.")
    return redirect(url_for(".reseller", tenant_id=tenant_id))


@bp.post("/admin/resellers/<uuid:tenant_id>/<any(suspend, reinstate):action>")
@require_role("ADMIN")
def change_status(tenant_id: uuid.UUID, action: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        tenant = platform.get_reseller(tenant_id)
    except ApiError:
        abort(404)
    platform.change_status(tenant, "suspended" if action == "suspend" else "active",
                           current_user)
    db.session.commit()
    return redirect(url_for(".reseller", tenant_id=tenant.id))

