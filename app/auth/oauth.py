"""OAuth sign-in with Google and GitHub, per tenant, through Authlib's Flask client.

Decision: each tenant brings its OWN OAuth app (client id + secret per provider, the secret
encrypted with app.secrets_box and bound to the tenant). White-label requires it: the
provider's consent screen shows the OAuth app's name, and a reseller's customers must see the
reseller's, not the platform's. It also keeps every callback URL (on the tenant's own primary
domain) registered with the reseller's app rather than one platform app listing every domain.
A tenant without an enabled row has no OAuth routes (404).

Provider endpoints are the real ones unless overridden in the environment (tests point them
at tests/fakes/oauth_provider.py): ``OAUTH_GOOGLE_SERVER_METADATA_URL`` (OpenID discovery
document), ``OAUTH_GITHUB_BASE_URL`` (authorize and token: ``<base>/login/oauth/...``) and
``OAUTH_GITHUB_API_BASE`` (``<base>/user``, ``<base>/user/emails``). These are operator
settings, never tenant input, so Authlib calls them directly rather than through the SSRF guard.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app
from sqlalchemy import func, select

from app import clock, secrets_box
from app.auth import audit
from app.auth.account import AccountError, no_room_for_customers, signup_open
from app.auth.models import OAUTH_PROVIDERS, OAuthIdentity, TenantOAuthProvider, User
from app.auth.service import UserValidationError, create_user, find_by_email, get_user
from app.extensions import db
from tenants.context import current

PROVIDER_LABELS = {"google": "Google", "github": "GitHub"}
# A provider that hangs must not hold a web worker for long.
PROVIDER_TIMEOUT_SECONDS = 10


class OAuthConfigError(ValueError):
    """An OAuth endpoint override is not a usable URL."""


@dataclass(frozen=True)
class ProviderEndpoints:
    google_metadata_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    github_base_url: str = "https://github.com"
    github_api_base: str = "https://api.github.com"

    @classmethod
    def from_settings(cls, extra: dict[str, str]) -> ProviderEndpoints:
        values = {}
        for field_name, env in (("google_metadata_url", "OAUTH_GOOGLE_SERVER_METADATA_URL"),
                                ("github_base_url", "OAUTH_GITHUB_BASE_URL"),
                                ("github_api_base", "OAUTH_GITHUB_API_BASE")):
            value = (extra.get(env) or "").strip()
            if not value:
                continue
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise OAuthConfigError(f"{env} must be an http(s) URL, got {value!r}")
            values[field_name] = value.rstrip("/")
        return cls(**values)


def endpoints() -> ProviderEndpoints:
    return ProviderEndpoints.from_settings(current_app.extensions["albedo.settings"].extra)


@dataclass(frozen=True)
class ProviderProfile:
    """What a provider told us about the person, reduced to what sign-in needs."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str


# -- a tenant's OAuth apps ------------------------------------------------------------------

def _purpose(provider: str) -> str:
    return f"oauth-client-secret:{provider}"


def provider_row(provider: str) -> TenantOAuthProvider | None:
    return db.session.scalars(select(TenantOAuthProvider).where(
        TenantOAuthProvider.provider == provider)).first()


def enabled_providers() -> list[str]:
    """The providers the current tenant signs people in with, in display order."""
    rows = db.session.scalars(select(TenantOAuthProvider.provider).where(
        TenantOAuthProvider.enabled.is_(True))).all()
    return [p for p in OAUTH_PROVIDERS if p in rows]


def configure_provider(provider: str, client_id: str, client_secret: str | None,
                       enabled: bool = True) -> TenantOAuthProvider:
    """Create or update the current tenant's app for ``provider``; a blank secret keeps the
    stored one (the settings form never shows it back)."""
    problems: dict[str, str] = {}
    if provider not in OAUTH_PROVIDERS:
        problems["provider"] = f"must be one of {', '.join(OAUTH_PROVIDERS)}"
    client_id = (client_id or "").strip()
    if not client_id or len(client_id) > 255:
        problems["client_id"] = "is required (at most 255 characters)"
    row = provider_row(provider) if not problems else None
    if not problems and row is None and not client_secret:
        problems["client_secret"] = "is required"  # noqa: S105  (a message, not a secret)
    if problems:
        raise UserValidationError(problems)
    tenant_id = current().id
    if row is None:
        row = TenantOAuthProvider(provider=provider)
        db.session.add(row)
    row.client_id = client_id
    row.enabled = enabled
    if client_secret:
        row.client_secret_encrypted = secrets_box.encrypt(client_secret, tenant_id,
                                                          _purpose(provider))
    db.session.flush()
    return row


# -- the Authlib client -----------------------------------------------------------------------

def init_app(app: Flask) -> None:
    # A mistyped endpoint override fails the start, with its name, rather than a sign-in.
    ProviderEndpoints.from_settings(app.extensions["albedo.settings"].extra)
    # One registry per app; clients are registered lazily, one per tenant app (see client()).
    OAuth(app)


def _registry() -> OAuth:
    return current_app.extensions["authlib.integrations.flask_client"]


def client(provider: str):
    """The Authlib client for the current tenant's ``provider`` app, or None when disabled.

    Authlib caches a client per name, so the name carries the tenant and a digest of the
    credentials and endpoints: a changed secret or endpoint gets a fresh client.
    """
    row = provider_row(provider)
    if row is None or not row.enabled:
        return None
    tenant_id = current().id
    secret = secrets_box.decrypt_text(row.client_secret_encrypted, tenant_id,
                                      _purpose(provider))
    ends = endpoints()
    if provider == "google":
        config: dict[str, Any] = {
            "server_metadata_url": ends.google_metadata_url,
            "client_kwargs": {"scope": "openid email profile",
                              "default_timeout": PROVIDER_TIMEOUT_SECONDS}}
    else:
        config = {
            "authorize_url": f"{ends.github_base_url}/login/oauth/authorize",
            "access_token_url": f"{ends.github_base_url}/login/oauth/access_token",
            "api_base_url": f"{ends.github_api_base}/",
            "client_kwargs": {"scope": "read:user user:email",
                              "default_timeout": PROVIDER_TIMEOUT_SECONDS}}
    digest = hashlib.sha256(repr((row.client_id, secret, sorted(config.items(),
                                                                 key=str))).encode()).hexdigest()
    name = f"{provider}_{tenant_id.hex}_{digest[:12]}"
    registry = _registry()
    if name not in registry._registry:  # Authlib has no public "is registered"
        registry.register(name, client_id=row.client_id, client_secret=secret, **config)
    return registry.create_client(name)


def fetch_profile(provider: str, oauth_client, token: dict) -> ProviderProfile:
    """Who signed in, from the verified id_token (Google) or the API (GitHub)."""
    if provider == "google":
        # Authlib has already checked the id_token's signature, issuer, audience and nonce.
        claims = token.get("userinfo") or oauth_client.userinfo(token=token)
        return ProviderProfile("google", str(claims["sub"]), claims.get("email"),
                               bool(claims.get("email_verified")), claims.get("name") or "")
    user = oauth_client.get("user", token=token)
    user.raise_for_status()
    data = user.json()
    emails = oauth_client.get("user/emails", token=token)
    emails.raise_for_status()
    # GitHub's profile email may be unverified or absent; only a verified address counts,
    # the primary one first.
    verified = [e for e in emails.json() if e.get("verified")]
    verified.sort(key=lambda e: not e.get("primary"))
    email = verified[0]["email"] if verified else data.get("email")
    return ProviderProfile("github", str(data["id"]), email, bool(verified),
                           data.get("name") or data.get("login") or "")


# -- signing in and linking ---------------------------------------------------------------

def identities_for(user_id: uuid.UUID) -> list[OAuthIdentity]:
    return list(db.session.scalars(select(OAuthIdentity).where(
        OAuthIdentity.user_id == user_id).order_by(OAuthIdentity.created_at)))


def _find_identity(provider: str, subject: str) -> OAuthIdentity | None:
    return db.session.scalars(select(OAuthIdentity).where(
        OAuthIdentity.provider == provider, OAuthIdentity.subject == subject)).first()


def _link(user: User, profile: ProviderProfile) -> OAuthIdentity:
    identity = OAuthIdentity(user_id=user.id, provider=profile.provider,
                             subject=profile.subject, email=profile.email,
                             last_used_at=clock.now())
    db.session.add(identity)
    db.session.flush()
    return identity


def link_to(user: User, profile: ProviderProfile) -> OAuthIdentity:
    """Add ``profile`` as a sign-in method of the signed-in ``user``."""
    identity = _find_identity(profile.provider, profile.subject)
    if identity is not None:
        if identity.user_id != user.id:
            raise AccountError("identity_taken", f"This {PROVIDER_LABELS[profile.provider]} "
                               "account is already linked to another account here.", 409)
        return identity
    return _link(user, profile)


def sign_in_with(profile: ProviderProfile) -> User:
    """The user ``profile`` signs in as in the current tenant, linking or creating as needed.

    Order: a known identity; else an existing user with the same email, only when both the
    provider and our record say the address is verified (otherwise someone who registered
    the victim's address first would be handed the victim's sign-ins); else a new USER where
    sign-up is open.
    """
    label = PROVIDER_LABELS[profile.provider]
    identity = _find_identity(profile.provider, profile.subject)
    if identity is not None:
        user = get_user(identity.user_id)
        identity.last_used_at = clock.now()
        if profile.email:
            identity.email = profile.email
    else:
        if not profile.email or not profile.email_verified:
            raise AccountError("email_unverified", f"Your {label} account has no verified "
                               "email address, so it cannot be used to sign in here.", 403)
        user = find_by_email(profile.email)
        if user is not None:
            if user.email_verified_at is None:
                raise AccountError("account_unverified", (
                    "An account with this email exists but its address is not verified yet. "
                    f"Sign in with your password, verify your email, then link {label} from "
                    "your account settings."), 409)
            _link(user, profile)
        elif signup_open():
            if why := no_room_for_customers():
                raise AccountError("signup_unavailable", why, 403)
            user = create_user(profile.email, None, role="USER", name=profile.name[:120],
                               verified=True)
            audit.record("sign_up", actor_user_id=user.id, actor_label=user.email,
                         target_type="user", target_id=user.id, via=profile.provider)
            from app.auth.account import customer_created

            customer_created(user)
            _link(user, profile)
        else:
            raise AccountError("no_account", "There is no account with this email here.", 403)
    if user is None or not user.is_active:
        raise AccountError("account_disabled", "This account is disabled.", 403)
    user.last_login_at = clock.now()
    audit.record("sign_in", actor_user_id=user.id, actor_label=user.email, target_type="user",
                 target_id=user.id, channel=f"oauth:{profile.provider}")
    return user


def unlink(user: User, identity_id: uuid.UUID) -> None:
    """Remove one of ``user``'s identities, unless it is their only way to sign in."""
    identity = db.session.scalars(select(OAuthIdentity).where(
        OAuthIdentity.id == identity_id, OAuthIdentity.user_id == user.id)).first()
    if identity is None:
        raise AccountError("not_found", "No such sign-in method on your account.", 404)
    count = db.session.scalar(select(func.count()).select_from(OAuthIdentity).where(
        OAuthIdentity.user_id == user.id))
    if user.password_hash is None and count <= 1:
        raise AccountError("last_sign_in_method", "Set a password before removing your only "
                           "way to sign in.", 400)
    db.session.delete(identity)
    db.session.flush()
