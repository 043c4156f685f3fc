"""Sign-in and sign-out pages, per tenant, in the tenant's branding."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user

from app.api.limits import auth_limit
from app.auth import sessions  # noqa: F401  (registers the user loader)
from app.auth.forms import LoginForm
from app.auth.signin import SignInError, sign_in

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would send a signed-in user anywhere.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(
            target).netloc:
        return target
    return url_for("web.home")


@bp.route("/login", methods=["GET", "POST"])
@auth_limit()
def login():
    form = LoginForm()
    error, status = None, 200
    if form.validate_on_submit():
        try:
            user = sign_in(form.email.data, form.password.data, channel="page")
        except SignInError as exc:
            error, status = exc.message, exc.status
        else:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        error, status = "Enter your email and password.", 400
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    return redirect(url_for("auth.login"))
