"""Short-lived access JWTs and rotating refresh tokens.

Access tokens (15 minutes, HS256 with a key derived from SECRET_KEY) carry tenant, user, role
and the user's session version: a token minted on tenant A is refused on tenant B, and a
password change ends every token. Refresh tokens (30 days) are random strings stored only as
SHA-256 hashes; each use returns a new one, and presenting a spent one revokes its whole
family (the stolen-token case: attacker and victim race, both lose, the user signs in again).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from flask import current_app
from sqlalchemy import select, update

from app import clock
from app.auth.models import RefreshToken, User
from app.extensions import db
from tenants.context import current

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=30)
ALGORITHM = "HS256"


class TokenError(Exception):
    """The token is invalid, expired, revoked or not for this tenant."""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def _signing_key() -> bytes:
    # Derived, so the session cookie key and the JWT key are never the same bytes.
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"albedo-access-token-v1", hashlib.sha256).digest()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_access_token(user: User) -> str:
    now = clock.now()
    claims = {
        "iss": current().primary_host, "aud": str(current().id), "tid": str(current().id),
        "sub": str(user.id), "role": user.role, "sv": user.session_version,
        "iat": int(now.timestamp()), "exp": int((now + ACCESS_TTL).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, _signing_key(), algorithm=ALGORITHM)


def decode_access_token(token: str) -> dict:
    """The claims, if the token is valid for the current tenant now."""
    try:
        claims = jwt.decode(token, _signing_key(), algorithms=[ALGORITHM],
                            audience=str(current().id),
                            options={"require": ["exp", "iat", "sub", "tid", "aud"],
                                     "verify_exp": False})
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from None
    # Expiry checked against the app clock (tests control it), not PyJWT's wall clock.
    if claims["exp"] <= int(clock.now().timestamp()):
        raise TokenError("the access token has expired")
    if not hmac.compare_digest(claims["tid"], str(current().id)):
        raise TokenError("the token belongs to another site")
    return claims


def _new_refresh(user: User, family_id: uuid.UUID) -> str:
    raw = "rt_" + secrets.token_urlsafe(32)
    db.session.add(RefreshToken(user_id=user.id, family_id=family_id, token_hash=hash_token(raw),
                                expires_at=clock.now() + REFRESH_TTL))
    return raw


def issue_pair(user: User) -> TokenPair:
    refresh = _new_refresh(user, uuid.uuid4())
    return TokenPair(issue_access_token(user), refresh, int(ACCESS_TTL.total_seconds()))


def rotate(refresh_token: str) -> TokenPair:
    """Spend ``refresh_token`` for a new pair; reuse of a spent one revokes the family."""
    row = db.session.scalars(select(RefreshToken).where(
        RefreshToken.token_hash == hash_token(refresh_token))).first()
    if row is None:
        raise TokenError("unknown refresh token")
    if row.revoked_at is not None:
        raise TokenError("the refresh token was revoked")
    if row.used_at is not None:
        revoke_family(row.family_id)
        db.session.commit()
        raise TokenError("the refresh token was already used; every session from it is "
                         "now signed out")
    if row.expires_at <= clock.now():
        raise TokenError("the refresh token has expired")
    user = db.session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise TokenError("the account is not active")
    # Compare-and-set: of two concurrent uses, exactly one wins the update.
    won = db.session.execute(
        update(RefreshToken).where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=clock.now())).rowcount
    if won != 1:
        db.session.rollback()
        revoke_family(row.family_id)
        db.session.commit()
        raise TokenError("the refresh token was already used")
    refresh = _new_refresh(user, row.family_id)
    return TokenPair(issue_access_token(user), refresh, int(ACCESS_TTL.total_seconds()))


def revoke_family(family_id: uuid.UUID) -> None:
    db.session.execute(update(RefreshToken).where(
        RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=clock.now()))


def revoke(refresh_token: str) -> bool:
    row = db.session.scalars(select(RefreshToken).where(
        RefreshToken.token_hash == hash_token(refresh_token))).first()
    if row is None:
        return False
    revoke_family(row.family_id)
    return True


def revoke_all_for_user(user_id: uuid.UUID) -> None:
    db.session.execute(update(RefreshToken).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=clock.now()))
