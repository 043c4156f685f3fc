"""OAuth pages: start a sign-in (or a link from account settings), the provider's callback,
and unlinking. Every route answers 404 on a tenant that has not enabled the provider.

CSRF: Authlib keeps the ``state`` (and, for Google, the OpenID ``nonce``) in this browser's
session and refuses a callback whose state it did not issue, so a code obtained in another
browser cannot be injected into this one. Linking starts with a CSRF-checked POST.
"""

from __future__ import annotations

import logging
import uuid

import requests
from authlib.integrations.base_client import OAuthError
from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user
from sqlalchemy.exc import IntegrityError

from app.auth import audit, oauth
from app.auth.account import AccountError, signup_open
from app.auth.account_forms import EmptyForm, OAuthAppForm, SignUpSettingsForm
from app.auth.permissions import require_role
from app.auth.service import UserValidationError
from app.extensions import db
from tenants.context import current, current_or_none
from tenants.urls import tenant_url_for

log = logging.getLogger(__name__)
bp = Blueprint("oauth", __name__)
_LINK_KEY = "albedo_oauth_link"


def _client_or_404(provider: str):
    if provider not in oauth.PROVIDER_LABELS:
        abort(404)
    client = oauth.client(provider)
    if client is None:
        abort(404)
    return client


def _redirect_to_provider(provider: str, client):
    # The callback is on the tenant's primary domain, whatever Host this request came in on:
    # it is what the tenant registered with the provider.
    try:
        return client.authorize_redirect(tenant_url_for("oauth.callback", provider=provider))
    except (requests.RequestException, ValueError):
        # Google's discovery document is fetched here; an unreachable provider is its outage,
        # explained on a page, not our 500.
        log.warning("oauth provider %s unreachable", provider, exc_info=True)
        return _problem(f"{oauth.PROVIDER_LABELS[provider]} cannot be reached right now. "
                        "Try again later.", 502)


def _problem(message: str, status: int):
    return render_template("auth/oauth_problem.html", message=message), status


def _on_primary_host() -> bool:
    # Authlib's state lives in the session cookie of the host the flow starts on, and the
    # provider returns to the primary domain: both must be the same host.
    return request.host.rsplit(":", 1)[0].lower() == current().primary_host


@bp.get("/auth/oauth/<provider>/start")
def start(provider: str):
    client = _client_or_404(provider)
    if not _on_primary_host():
        return redirect(tenant_url_for("oauth.start", provider=provider))
    session.pop(_LINK_KEY, None)
    return _redirect_to_provider(provider, client)


@bp.post("/account/oauth/<provider>/link")
@login_required
def link(provider: str):
    client = _client_or_404(provider)
    if not EmptyForm().validate_on_submit():
        abort(400)
    if not _on_primary_host():
        # This session does not exist on the primary domain; link from there.
        return redirect(tenant_url_for("account.settings"))
    session[_LINK_KEY] = str(current_user.id)
    return _redirect_to_provider(provider, client)


@bp.get("/auth/oauth/<provider>/callback")
def callback(provider: str):
    client = _client_or_404(provider)
    label = oauth.PROVIDER_LABELS[provider]
    link_user_id = session.pop(_LINK_KEY, None)
    try:
        token = client.authorize_access_token()
        profile = oauth.fetch_profile(provider, client, token)
    except OAuthError as exc:
        # Unknown or replayed state, the person said no, or the provider refused the code.
        if exc.error == "access_denied":
            return _problem(f"Signing in with {label} was cancelled.", 400)
        log.info("oauth callback refused: %s", exc)
        return _problem(f"Signing in with {label} did not complete. Start again.", 400)
    except Exception:
        # Anything else on the provider's side (network, malformed answer, bad id_token) is
        # a failed sign-in to explain, not our 500.
        log.exception("oauth exchange with %s failed", provider)
        return _problem(f"{label} did not answer as expected. Try again later.", 502)
    try:
        if (link_user_id and current_user.is_authenticated
                and str(current_user.id) == link_user_id):
            oauth.link_to(current_user, profile)
            db.session.commit()
            return redirect(url_for("account.settings", sent="linked"))
        user = _sign_in_once_more_if_raced(profile)
    except AccountError as exc:
        db.session.rollback()
        return _problem(exc.message, exc.status)
    login_user(user)
    return redirect(url_for("web.home"))


def _sign_in_once_more_if_raced(profile: oauth.ProviderProfile):
    """Two callbacks for one new account (a double click, two tabs) race to create it: the
    loser's insert collides with the winner's. Its second try finds the account and signs
    in to it, instead of answering a 500."""
    for attempt in (1, 2):
        try:
            user = oauth.sign_in_with(profile)
            db.session.commit()
            return user
        except (IntegrityError, UserValidationError):
            db.session.rollback()
            if attempt == 2:
                raise AccountError("try_again", "Signing in collided with another attempt; "
                                                "try again.", 409) from None
    raise AssertionError("unreachable")


@bp.post("/account/oauth/<uuid:identity_id>/unlink")
@login_required
def unlink(identity_id: uuid.UUID):
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        oauth.unlink(current_user, identity_id)
    except AccountError as exc:
        db.session.rollback()
        return _problem(exc.message, exc.status)
    db.session.commit()
    return redirect(url_for("account.settings", sent="unlinked"))


# -- the reseller's sign-in settings ----------------------------------------------------------

def _render_sign_in_settings(errors: dict[str, dict[str, str]] | None = None,
                             notice: str | None = None, status: int = 200):
    tenant = current()
    apps = {}
    for provider, label in oauth.PROVIDER_LABELS.items():
        row = oauth.provider_row(provider)
        apps[provider] = {
            "label": label, "configured": row is not None,
            "form": OAuthAppForm(prefix=provider, formdata=None, client_id=row.client_id if row
                                 else "", enabled=row.enabled if row else True),
            # What the reseller registers as the redirect URI in its OAuth app.
            "callback_url": tenant_url_for("oauth.callback", provider=provider)}
    signup_form = SignUpSettingsForm(formdata=None, signup_enabled=tenant.signup_enabled)
    return render_template("auth/sign_in_settings.html", apps=apps, signup_form=signup_form,
                           errors=errors or {}, notice=notice), status


@bp.get("/settings/sign-in")
@require_role("RESELLER")
def sign_in_settings():
    return _render_sign_in_settings(notice={"saved": "Saved."}.get(request.args.get("sent", "")))


@bp.post("/settings/sign-in/signup")
@require_role("RESELLER")
def save_signup_setting():
    from tenants.service import get_tenant

    form = SignUpSettingsForm()
    if not form.validate_on_submit():
        abort(400)
    # The tenant row is platform-level; a reseller changes only its own, found by the id of
    # the tenant this request resolved to. The resolution cache is invalidated on commit.
    get_tenant(current().id).signup_enabled = bool(form.signup_enabled.data)
    audit.record("sign_in_settings_changed", actor_user_id=current_user.id,
                 actor_label=current_user.email, target_type="tenant", target_id=current().id,
                 signup_enabled=bool(form.signup_enabled.data))
    db.session.commit()
    return redirect(url_for("oauth.sign_in_settings", sent="saved"))


@bp.post("/settings/sign-in/<provider>")
@require_role("RESELLER")
def save_oauth_app(provider: str):
    if provider not in oauth.PROVIDER_LABELS:
        abort(404)
    form = OAuthAppForm(prefix=provider)
    if not form.validate_on_submit():
        errors = {name: messages[0] for name, messages in form.errors.items()}
        return _render_sign_in_settings({provider: errors}, status=400)
    try:
        oauth.configure_provider(provider, form.client_id.data, form.client_secret.data,
                                 enabled=bool(form.enabled.data))
    except UserValidationError as exc:
        db.session.rollback()
        return _render_sign_in_settings({provider: exc.details}, status=400)
    # The secret never goes into the log; that it was set, and by whom, does.
    audit.record("sign_in_settings_changed", actor_user_id=current_user.id,
                 actor_label=current_user.email, target_type="oauth_provider",
                 target_id=provider, enabled=bool(form.enabled.data))
    db.session.commit()
    return redirect(url_for("oauth.sign_in_settings", sent="saved"))


@bp.app_context_processor
def _sign_in_options() -> dict:
    # Functions, not values: only the sign-in page calls them, so other pages query nothing.
    def providers() -> list[tuple[str, str]]:
        if current_or_none() is None:
            return []
        return [(p, oauth.PROVIDER_LABELS[p]) for p in oauth.enabled_providers()]

    def can_sign_up() -> bool:
        tenant = current_or_none()
        return tenant is not None and signup_open(tenant)

    return {"oauth_sign_in_providers": providers, "signup_open": can_sign_up}
