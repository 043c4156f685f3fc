"""Account life cycle for people, not API clients: sign-up, email verification, password reset
and password change. No Flask request objects here; views call these and shape the answer.

Links sent by email are signed with the app secret (itsdangerous), one salt per purpose, and
carry what makes them single-purpose and single-use:

* verification: user id, tenant id and the email being verified — a link for an old address
  stops working once the address changes;
* reset: user id, tenant id, the session version and a fingerprint of the current password
  hash — using the link changes both, so the same link cannot be used twice, and any older
  reset link dies with it.

Expiry is checked against ``app.clock`` so tests can move time.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from app import clock
from app.auth import audit, tokens
from app.auth.models import User
from app.auth.passwords import hash_password, password_problem, verify_password
from app.auth.service import (
    EMAIL,
    UserValidationError,
    create_user,
    find_by_email,
    get_user,
    normalise_email,
    set_password,
)
from app.email.service import send_email
from app.extensions import db
from tenants.context import TenantInfo, current
from tenants.urls import tenant_url_for

VERIFY_TTL = timedelta(days=2)
RESET_TTL = timedelta(hours=1)
_VERIFY_SALT = "albedo.account.verify-email"
_RESET_SALT = "albedo.account.password-reset"


class AccountError(Exception):
    """A refused account operation: ``code`` for tests and logs, ``message`` for people."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class _ClockSigner(TimestampSigner):
    # itsdangerous reads time.time(); the app's clock lets tests expire links without sleeping.
    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt,
                                  signer=_ClockSigner)


def _password_fingerprint(user: User) -> str:
    # Changes whenever the password does; a short digest keeps the hash itself out of the URL.
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def _load(salt: str, token: str, ttl: timedelta) -> dict:
    try:
        data = _serializer(salt).loads(token, max_age=int(ttl.total_seconds()))
    except SignatureExpired:
        raise AccountError("link_expired", "This link has expired: ask for a new one.") from None
    except BadSignature:
        raise AccountError("link_invalid", "This link is not valid.") from None
    if not isinstance(data, dict):
        raise AccountError("link_invalid", "This link is not valid.")
    return data


def _user_for(data: dict, tenant: TenantInfo) -> User:
    # The tenant id inside the signed payload stops a link from tenant A working on tenant B
    # even before the tenant guard hides B's users.
    if data.get("t") != str(tenant.id):
        raise AccountError("link_invalid", "This link is not valid.")
    try:
        user = get_user(uuid.UUID(str(data.get("u"))))
    except ValueError:
        user = None
    if user is None or not user.is_active:
        raise AccountError("link_invalid", "This link is not valid.")
    return user


# -- sign-up and verification ------------------------------------------------------------

def signup_open(tenant: TenantInfo | None = None) -> bool:
    """End customers sign themselves up on a reseller's domain, unless the reseller said no."""
    tenant = tenant or current()
    return not tenant.is_platform and tenant.signup_enabled and tenant.is_active


def no_room_for_customers() -> str | None:
    """Why nobody new can join now (the reseller's plan has no customer place left), in the
    customer's words: the reseller's plan is not the customer's business. None: there is room.
    """
    from app.billing.limits import PlanLimitReached, ensure_room

    try:
        ensure_room("customers")
    except PlanLimitReached:
        return (f"{current().display_name} is not accepting new accounts right now. "
                "Please try again later.")
    return None


@dataclass(frozen=True)
class SignUpResult:
    # None when the email already had an account: the caller answers the same either way.
    user: User | None


def sign_up(email: str, password: str, name: str = "") -> SignUpResult:
    """Create an unverified USER and email them a verification link.

    Signing up with a registered email is not an error shown on the page (that would tell
    anyone which emails have accounts here); the owner of that address gets an email saying
    so instead, and the page says "check your email" in both cases.
    """
    if not signup_open():
        raise AccountError("signup_closed", "Sign-up is not available here.", 404)
    email = normalise_email(email)
    problems: dict[str, str] = {}
    if not EMAIL.match(email) or len(email) > 254:
        problems["email"] = "must be an email address"
    if why := password_problem(password):
        problems["password"] = why
    if problems:
        raise UserValidationError(problems)
    if why := no_room_for_customers():  # before the lookup: every email gets the same answer
        raise UserValidationError({"form": why})
    existing = find_by_email(email)
    if existing is not None:
        hash_password(password)  # the same argon2 cost as a real sign-up: timing says nothing
        send_email(existing.email, "account_exists", {
            "name": existing.name, "login_url": tenant_url_for("auth.login"),
            "reset_url": tenant_url_for("account.forgot_password")})
        return SignUpResult(None)
    user = create_user(email, password, role="USER", name=name)
    audit.record("sign_up", actor_user_id=user.id, actor_label=user.email, target_type="user",
                 target_id=user.id)
    customer_created(user)
    send_verification(user)
    return SignUpResult(user)


def customer_created(user: User) -> None:
    """customer.created for the reseller's webhooks and Zapier (sign-up and OAuth alike)."""
    from app.integrations.events import emit

    emit("customer.created", {"user_id": str(user.id), "email": user.email, "name": user.name},
         owner_user_id=user.id)


def verification_token(user: User) -> str:
    return _serializer(_VERIFY_SALT).dumps(
        {"u": str(user.id), "t": str(user.tenant_id), "e": user.email})


def send_verification(user: User) -> None:
    """Email ``user`` a link, on the tenant's primary domain, that verifies their address."""
    link = tenant_url_for("account.verify_email", token=verification_token(user))
    send_email(user.email, "verify_email", {"name": user.name, "verify_url": link,
                                            "ttl_hours": int(VERIFY_TTL.total_seconds() // 3600)})


def verify_email(token: str) -> User:
    data = _load(_VERIFY_SALT, token, VERIFY_TTL)
    user = _user_for(data, current())
    if data.get("e") != user.email:
        raise AccountError("link_invalid", "This link was for another email address.")
    if user.email_verified_at is None:
        user.email_verified_at = clock.now()
    return user


# -- password reset -----------------------------------------------------------------------

def reset_token(user: User) -> str:
    return _serializer(_RESET_SALT).dumps(
        {"u": str(user.id), "t": str(user.tenant_id), "v": user.session_version,
         "p": _password_fingerprint(user)})


def request_password_reset(email: str) -> None:
    """Email a reset link if ``email`` has an active account here; silently nothing otherwise.

    The caller answers identically in both cases, so the page cannot be used to find out
    who has an account.
    """
    user = find_by_email(email)
    if user is None or not user.is_active:
        return
    link = tenant_url_for("account.reset_password", token=reset_token(user))
    send_email(user.email, "password_reset", {
        "name": user.name, "reset_url": link,
        "ttl_minutes": int(RESET_TTL.total_seconds() // 60)})


def user_for_reset(token: str) -> User:
    """The user a still-valid, unused reset link belongs to; AccountError otherwise."""
    data = _load(_RESET_SALT, token, RESET_TTL)
    user = _user_for(data, current())
    if data.get("v") != user.session_version or data.get("p") != _password_fingerprint(user):
        raise AccountError("link_used", "This link was already used or replaced: ask for a "
                                        "new one.")
    return user


def reset_password(token: str, new_password: str) -> User:
    user = user_for_reset(token)
    _change(user, new_password, via="reset")
    # Receiving the link proved the user controls the mailbox.
    if user.email_verified_at is None:
        user.email_verified_at = clock.now()
    return user


# -- password change ------------------------------------------------------------------------

def change_password(user: User, current_password: str | None, new_password: str) -> None:
    """Change a signed-in user's password; the current one is required when there is one.

    An account created through OAuth has no password yet and may set one here.
    """
    if user.password_hash is not None and not verify_password(user.password_hash,
                                                              current_password or ""):
        raise UserValidationError({"current_password": "is not your current password"})
    _change(user, new_password, via="settings")


def _change(user: User, new_password: str, via: str) -> None:
    # set_password bumps session_version: every session and access JWT of this user ends.
    # Refresh tokens are rows, so they are revoked explicitly.
    set_password(user, new_password)
    tokens.revoke_all_for_user(user.id)
    audit.record("password_changed", actor_user_id=user.id, actor_label=user.email,
                 target_type="user", target_id=user.id, via=via)
    db.session.flush()
