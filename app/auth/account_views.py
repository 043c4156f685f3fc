"""Account pages: sign-up, email verification, password reset and the settings page.

Thin: each view validates its form, calls app.auth.account and renders. Refusals come back
as the same page with the form errors and a 4xx status, never a stack trace.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user

from app.api.limits import auth_limit
from app.auth import account, oauth
from app.auth.account_forms import (
    ChangePasswordForm,
    EmptyForm,
    ForgotPasswordForm,
    ResetPasswordForm,
    SignUpForm,
)
from app.auth.service import UserValidationError
from app.extensions import db

bp = Blueprint("account", __name__)


def _form_errors(form) -> dict[str, str]:
    # WTForms keeps a list per field; the pages show the first message of each.
    return {name: messages[0] for name, messages in form.errors.items() if messages}


@bp.route("/signup", methods=["GET", "POST"])
@auth_limit()
def signup():
    if not account.signup_open():
        # The platform domain and resellers who turned sign-up off have no such page.
        abort(404)
    form = SignUpForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            account.sign_up(form.email.data, form.password.data, form.name.data or "")
        except UserValidationError as exc:
            errors = exc.details
        else:
            db.session.commit()
            return render_template("auth/check_email.html", email=form.email.data,
                                   purpose="signup")
    elif form.is_submitted():
        errors = _form_errors(form) or {"form": "Fill in the form."}
    status = 400 if errors else 200
    return render_template("auth/signup.html", form=form, errors=errors), status


@bp.get("/verify-email/<token>")
def verify_email(token: str):
    # Verifying on GET is safe to repeat and changes nothing but the verified flag; it does
    # not sign anyone in, so a mail scanner following the link grants nothing.
    try:
        user = account.verify_email(token)
    except account.AccountError as exc:
        return render_template("auth/link_problem.html", message=exc.message,
                               purpose="verify"), exc.status
    db.session.commit()
    return render_template("auth/email_verified.html", email=user.email)


@bp.post("/account/verify-email")
@login_required
@auth_limit()
def resend_verification():
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    if current_user.email_verified_at is None:
        account.send_verification(current_user)
        db.session.commit()
    return redirect(url_for("account.settings", sent="verification"))


@bp.route("/forgot-password", methods=["GET", "POST"])
@auth_limit()
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        account.request_password_reset(form.email.data)
        db.session.commit()
        # The same answer whether or not the address has an account here.
        return render_template("auth/check_email.html", email=form.email.data,
                               purpose="reset")
    errors = _form_errors(form) if form.is_submitted() else {}
    if form.is_submitted() and not errors:
        errors = {"form": "Fill in the form."}
    return render_template("auth/forgot_password.html", form=form,
                           errors=errors), 400 if errors else 200


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
@auth_limit()
def reset_password(token: str):
    try:
        account.user_for_reset(token)
    except account.AccountError as exc:
        return render_template("auth/link_problem.html", message=exc.message,
                               purpose="reset"), exc.status
    form = ResetPasswordForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            account.reset_password(token, form.password.data)
        except UserValidationError as exc:
            errors = exc.details
        else:
            db.session.commit()
            return render_template("auth/password_reset_done.html")
    elif form.is_submitted():
        errors = _form_errors(form) or {"form": "Fill in the form."}
    return render_template("auth/reset_password.html", form=form, errors=errors,
                           token=token), 400 if errors else 200


def _render_settings(password_form: ChangePasswordForm, errors: dict[str, str] | None = None,
                     notice: str | None = None, status: int = 200):
    return render_template(
        "auth/account.html", user=current_user, password_form=password_form,
        action_form=EmptyForm(), errors=errors or {}, notice=notice,
        identities=oauth.identities_for(current_user.id),
        linkable=oauth.enabled_providers()), status


_NOTICES = {"verification": "We sent you a new verification link.",
            "password": "Your password was changed. Other sessions were signed out.",
            "unlinked": "The sign-in method was removed.",
            "linked": "The sign-in method was added."}


@bp.get("/account")
@login_required
def settings():
    return _render_settings(ChangePasswordForm(), notice=_NOTICES.get(request.args.get("sent")))


@bp.post("/account/password")
@login_required
@auth_limit()
def change_password():
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _render_settings(form, _form_errors(form) or {"form": "Fill in the form."},
                                status=400)
    user = current_user._get_current_object()
    try:
        account.change_password(user, form.current_password.data, form.password.data)
    except UserValidationError as exc:
        db.session.rollback()
        return _render_settings(form, exc.details, status=400)
    db.session.commit()
    # The session version moved on: renew this session so only the *other* ones end.
    login_user(user)
    return redirect(url_for("account.settings", sent="password"))
