"""Pages: platform admins manage resellers; resellers edit their own branding."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, EmailField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app import clock
from app.auth.permissions import require_role
from app.errors import ApiError
from app.extensions import db
from tenants import brand_assets, platform, platform_people, verification
from tenants import domains as reseller_domains
from tenants.context import current
from tenants.models import Domain, Tenant
from tenants.service import info_for
from tenants.urls import base_url

bp = Blueprint("tenants_pages", __name__)


class BrandingForm(FlaskForm):
    display_name = StringField("Display name", validators=[DataRequired(), Length(max=120)])
    logo_file = FileField("Logo (PNG, JPEG or WebP, up to 512 KB and 2048 px)")
    remove_logo = BooleanField("Remove the logo")
    favicon_file = FileField("Favicon (PNG, JPEG or WebP, up to 128 KB and 512 px)")
    remove_favicon = BooleanField("Remove the favicon")
    logo_url = StringField("Or a logo URL (https://…)", validators=[Optional(), Length(max=500)])
    primary_color = StringField("Primary colour (header and buttons, white text)",
                                validators=[DataRequired()])
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
    # The operator's override, audited like any verification; resellers verify by DNS.
    verified = BooleanField("Mark verified now, without the DNS check (override)")
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


_IMAGE_FIELDS = ("logo_file", "remove_logo", "favicon_file", "remove_favicon")


def _apply_images(form: BrandingForm, tenant: Tenant, data: dict) -> bool:
    """Check and store uploaded images (errors go next to their field); False on a refusal."""
    ok = True
    for kind, upload, remove in (("logo", form.logo_file, form.remove_logo),
                                 ("favicon", form.favicon_file, form.remove_favicon)):
        column = f"{kind}_url"
        if upload.data and getattr(upload.data, "filename", ""):
            try:
                image = brand_assets.check_image(kind, upload.data.read())
            except brand_assets.ImageRejected as exc:
                upload.errors = [str(exc)]
                ok = False
                continue
            url = brand_assets.url_of(brand_assets.save(kind, image))
            if kind == "logo":
                data["logo_url"] = url
            else:
                tenant.favicon_url = url
        elif remove.data:
            if kind == "logo":
                data["logo_url"] = ""
            setattr(tenant, column, None)
    return ok


@bp.route("/settings/branding", methods=["GET", "POST"])
@require_role("RESELLER")
def branding():
    tenant = db.session.get(Tenant, current().id)
    form = BrandingForm(obj=tenant)
    status = 200
    if form.validate_on_submit():
        data = {k: (v or None) if k in ("logo_url", "support_email") else v
                for k, v in form.data.items() if k not in ("csrf_token", *_IMAGE_FIELDS)}
        try:
            images_ok = _apply_images(form, tenant, data)
            platform.change_branding(tenant, data)
            if data.get("logo_url") == "":
                tenant.logo_url = None
            if not images_ok:
                raise ApiError(422, "validation_failed", "The branding could not be saved.")
            db.session.commit()
            flash("Branding saved.")
            return redirect(url_for(".branding"))
        except ApiError as exc:
            _show_errors(form, exc)
            status = 422
    elif form.is_submitted():
        status = 422
    return render_template("tenants/branding.html", form=form, tenant=tenant), status


@bp.get("/brand/<any(logo, favicon):kind>-<digest>.<any(png, jpg, webp):extension>")
def brand_image(kind: str, digest: str, extension: str) -> Response:
    """A tenant's uploaded image; the URL names its bytes, so it is cached for a year."""
    asset = brand_assets.load(kind, digest)
    if asset is None:
        abort(404)
    response = Response(asset.data, mimetype=asset.content_type)
    response.cache_control.public = True
    response.cache_control.max_age = 31536000
    response.cache_control.immutable = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.set_etag(asset.sha256)
    return response


def _check_dns(domain: Domain) -> None:
    """Look the domain's TXT record up now and flash what was found, in product words."""
    outcome = reseller_domains.verify(domain)
    db.session.commit()
    if outcome.verified:
        flash(f"{domain.hostname} is verified: it is served as soon as it points here.")
    else:
        flash(outcome.problem, "error")


@bp.get("/settings/domains")
@require_role("RESELLER")
def domains():
    """The reseller's custom domains and the DNS record that proves each one."""
    return render_template("tenants/domains.html", domains=reseller_domains.own_domains(),
                           record_name=verification.record_name, action_form=ActionForm(),
                           platform_host=current().primary_host,
                           check_words=verification.OUTCOME_WORDS)


@bp.post("/settings/domains/<uuid:domain_id>/verify")
@require_role("RESELLER")
def verify_domain(domain_id: uuid.UUID):
    """Verify now: look the domain's TXT record up and say what was found."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        domain = reseller_domains.own_domain(domain_id)
    except ApiError:
        abort(404)
    _check_dns(domain)
    return redirect(url_for(".domains"))


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
                           record_name=verification.record_name,
                           check_words=verification.OUTCOME_WORDS,
                           invitations=platform_people.invitations_of(tenant),
                           now=clock.now()), status


@bp.post("/admin/resellers/<uuid:tenant_id>/domains/<uuid:domain_id>/verify")
@require_role("ADMIN")
def check_reseller_domain(tenant_id: uuid.UUID, domain_id: uuid.UUID):
    """Check DNS: the reseller's own "verify now", run by the operator for it (audited by
    app.auth.audit_watch like the API's check). Another reseller's domain is not found."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        domain = reseller_domains.reseller_domain(platform.get_reseller(tenant_id), domain_id)
    except ApiError:
        abort(404)
    _check_dns(domain)
    return redirect(url_for(".reseller", tenant_id=tenant_id))


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

