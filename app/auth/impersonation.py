"""Sign in as someone else, for support: reseller staff as one of their customers, the
platform operator as a reseller's staff member.

While it lasts the session says who is really acting (``session["sign_in_as"]``), every page
shows a banner (the layout's include, app.auth.sign_in_as_views), and password, API key,
sign-in method and billing changes are refused server-side (:func:`refusal`). It lasts at
most ``ALBEDO_SIGN_IN_AS_MINUTES`` (60): the first request after that ends it, audited with
the reason ``time_limit``. Start and end are audited in the tenant whose account is used
(and, for the operator, in the platform's log too).

Same tenant (staff → customer): the staff member's session turns into the customer's; ending
turns it back, checking the staff account is still active and unchanged.

Cross tenant (operator → reseller staff): sessions are per host, so the platform issues a
one-minute, single-use handoff link (signed, its nonce spent in Redis) to the reseller's
domain; ending signs out there and returns to the platform page, where the operator's own
session never stopped.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, session
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from app import clock
from app.auth import audit
from app.auth.models import User
from app.errors import ApiError
from app.extensions import db
from tenants.context import TenantInfo, cross_tenant, current

SESSION_KEY = "sign_in_as"
HANDOFF_TTL_SECONDS = 60
_HANDOFF_SALT = "albedo.sign-in-as.handoff"

# What a session signed in as someone else may not change (blueprint or endpoint names,
# any method but GET/HEAD/OPTIONS). Whole blueprints, so a page added to them later is
# covered without remembering this list.
# The API blueprints are listed too: the API authenticates with tokens, never this session,
# but a browser sends the cookie anyway, and the answer should then be this refusal.
REFUSED_BLUEPRINTS = frozenset({"account", "api_keys_page", "billing_pages", "oauth",
                                "api_keys", "auth_api", "billing"})
# No sign-in-as inside a sign-in-as: one level, so "return" always means the real person.
REFUSED_ENDPOINTS = frozenset({"sign_in_as.start", "sign_in_as.operator_start"})
# Allowed inside those blueprints: nothing is changed by reading.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# How long a sign-in-as may last: long enough for a support call, short enough that a
# forgotten tab does not keep someone else's account open.
DEFAULT_MINUTES = 60
MINUTES_RANGE = (1, 480)
MINUTES_KEY = "albedo.sign_in_as_minutes"


class SignInAsConfigError(ValueError):
    """ALBEDO_SIGN_IN_AS_MINUTES is malformed; the message names it and the range."""


def minutes_from(extra: Mapping[str, str]) -> int:
    """``ALBEDO_SIGN_IN_AS_MINUTES`` (60), a whole number from 1 to 480; checked at start."""
    raw = (extra.get("ALBEDO_SIGN_IN_AS_MINUTES") or "").strip() or str(DEFAULT_MINUTES)
    low, high = MINUTES_RANGE
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SignInAsConfigError(f"ALBEDO_SIGN_IN_AS_MINUTES is a whole number of minutes "
                                  f"from {low} to {high}, not {raw!r}")
    return int(raw)


def time_limit() -> timedelta:
    minutes = current_app.extensions.get(MINUTES_KEY)
    if minutes is None:
        minutes = current_app.extensions[MINUTES_KEY] = minutes_from(
            current_app.extensions["albedo.settings"].extra)
    return timedelta(minutes=minutes)


def ends_at(record: Mapping[str, Any]) -> datetime:
    """When this sign-in-as stops counting (a record without a start: already over)."""
    try:
        started = datetime.fromisoformat(record["started_at"])
    except (KeyError, TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
    return started + time_limit()


def expired(record: Mapping[str, Any]) -> bool:
    return clock.now() >= ends_at(record)


def active() -> dict[str, Any] | None:
    """The sign-in-as record of this session, when it belongs to the signed-in user."""
    from flask_login import current_user

    record = session.get(SESSION_KEY)
    if not record:
        return None
    if not current_user.is_authenticated or str(current_user.id) != record.get("target_id"):
        # Someone else signed in on this browser since: the record means nothing any more.
        session.pop(SESSION_KEY, None)
        return None
    return record


def refusal(method: str, endpoint: str | None) -> ApiError | None:
    """Why this request may not run while signed in as someone else, or None."""
    if method in SAFE_METHODS or endpoint is None:
        return None
    blueprint = endpoint.rpartition(".")[0]
    if blueprint in REFUSED_BLUEPRINTS or endpoint in REFUSED_ENDPOINTS:
        return ApiError(403, "refused_while_signed_in_as",
                        "You are signed in as someone else for support: passwords, API keys, "
                        "sign-in methods and billing cannot be changed. Return to your own "
                        "account first.")
    return None


# -- reseller staff → customer, same tenant ---------------------------------------------------

def customer_for_support(staff: User, customer_id: uuid.UUID) -> User:
    """The active customer of this tenant that ``staff`` may sign in as; 404 otherwise."""
    if staff.role != "RESELLER":
        raise ApiError(403, "forbidden", "Only the reseller's team signs in as customers.")
    customer = db.session.get(User, customer_id)  # the guard hides other tenants' users
    if customer is None or customer.role != "USER":
        raise ApiError(404, "not_found", "No such customer.")
    if not customer.is_active:
        raise ApiError(409, "user_inactive", "Reactivate the customer before signing in as them.")
    return customer


def start_for_customer(staff: User, customer: User) -> dict[str, Any]:
    """Audit the start; the caller logs the customer in and stores the returned record."""
    audit.record("sign_in_as_started", actor_user_id=staff.id, actor_label=staff.email,
                 target_type="user", target_id=customer.id, email=customer.email)
    return {"target_id": str(customer.id), "target_email": customer.email,
            "by_id": str(staff.id), "by_label": staff.email,
            "by_version": staff.session_version, "kind": "staff",
            "started_at": clock.now().isoformat()}


def end(record: dict[str, Any], target: User, reason: str = "ended") -> User | None:
    """Audit the end; return the staff account to sign back in (None: operator, or gone)."""
    if record.get("kind") == "platform":
        audit.record("sign_in_as_ended", target_type="user", target_id=target.id,
                     actor_label="platform operator", email=target.email, reason=reason)
        with cross_tenant("the platform operator's sign-in-as is recorded in its own log"):
            audit.record("sign_in_as_ended", target_type="user", target_id=target.id,
                         tenant_id=uuid.UUID(record["platform_id"]),
                         actor_user_id=uuid.UUID(record["by_id"]),
                         actor_label=record["by_label"], email=target.email,
                         tenant=str(current().id), reason=reason)
            db.session.flush()
        return None
    staff_id = uuid.UUID(record["by_id"])
    audit.record("sign_in_as_ended", target_type="user", target_id=target.id,
                 actor_user_id=staff_id, actor_label=record.get("by_label", ""),
                 email=target.email, reason=reason)
    staff = db.session.get(User, staff_id)
    if (staff is None or not staff.is_active or staff.role != "RESELLER"
            or staff.session_version != record.get("by_version")):
        return None  # changed meanwhile: sign in again rather than trust an old record
    return staff


# -- platform operator → reseller staff, across tenants ---------------------------------------

def _serializer() -> URLSafeTimedSerializer:
    from app.auth.account import _ClockSigner  # the app clock: tests expire links

    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_HANDOFF_SALT,
                                  signer=_ClockSigner)


def staff_for_operator(tenant: TenantInfo, user_id: uuid.UUID) -> User:
    """A reseller's active staff member, read across tenants (the operator's named opt-in)."""
    user = db.session.scalars(select(User).where(
        User.id == user_id, User.tenant_id == tenant.id).execution_options(
        cross_tenant="platform operator signs in as a reseller's staff for support")).first()
    if user is None or user.role != "RESELLER":
        raise ApiError(404, "not_found", "No such staff member at this reseller.")
    if not user.is_active:
        raise ApiError(409, "user_inactive", "This account is deactivated.")
    return user


def start_for_staff(operator: User, tenant: TenantInfo, staff: User, return_url: str) -> str:
    """Audit the start in both logs and return the handoff token for the reseller's domain."""
    platform_id = current().id
    with cross_tenant("the platform operator's sign-in-as is recorded in both logs"):
        audit.record("sign_in_as_started", target_type="user", target_id=staff.id,
                     tenant_id=tenant.id, actor_label="platform operator", email=staff.email)
        audit.record("sign_in_as_started", target_type="user", target_id=staff.id,
                     tenant_id=platform_id, actor_user_id=operator.id,
                     actor_label=operator.email, email=staff.email, tenant=str(tenant.id))
        db.session.flush()
    return _serializer().dumps({
        "t": str(tenant.id), "u": str(staff.id), "v": staff.session_version,
        "a": str(operator.id), "al": operator.email, "p": str(platform_id),
        "r": return_url, "n": secrets.token_urlsafe(16)})


def accept_handoff(token: str) -> tuple[User, dict[str, Any]]:
    """On the reseller's domain: the staff member to sign in and the session record."""
    from app.redis import get_redis

    try:
        data = _serializer().loads(token, max_age=HANDOFF_TTL_SECONDS)
    except SignatureExpired:
        raise ApiError(410, "link_expired", "This sign-in link has expired.") from None
    except BadSignature:
        raise ApiError(404, "link_invalid", "This sign-in link is not valid.") from None
    if not isinstance(data, dict) or data.get("t") != str(current().id):
        raise ApiError(404, "link_invalid", "This sign-in link is not valid.")
    # Single use: the nonce is spent once, for as long as the link could be valid.
    key = f"albedo:sign-in-as:{data['n']}"
    if not get_redis().set(key, "1", nx=True, ex=HANDOFF_TTL_SECONDS * 2):
        raise ApiError(410, "link_used", "This sign-in link was already used.")
    staff = db.session.get(User, uuid.UUID(data["u"]))
    if (staff is None or not staff.is_active or staff.role != "RESELLER"
            or staff.session_version != data.get("v")):
        raise ApiError(404, "link_invalid", "This sign-in link is not valid.")
    return staff, {"target_id": str(staff.id), "target_email": staff.email,
                   "by_id": data["a"], "by_label": data["al"], "kind": "platform",
                   "platform_id": data["p"], "return_url": data["r"],
                   "started_at": clock.now().isoformat()}

