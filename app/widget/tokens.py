"""Widget tokens: what a page holds after exchanging its publishable key (at most 15 minutes).

An HS256 JWT with a key derived from SECRET_KEY under its own label (never the access
tokens' key, so neither kind of token passes for the other), carrying the tenant, the widget
key, its agent, the visitor, the origin it was issued to and, when license-gated, the license.
Every use also reads the widget key, so revoking the key ends its tokens at once.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from flask import current_app

from app import clock
from tenants.context import current

ALGORITHM = "HS256"
PREFIX = "wt_"  # not an API key (ak_) nor an access token: the guard never mistakes it


class WidgetTokenError(Exception):
    """The token is malformed, expired or not for this site."""


@dataclass(frozen=True)
class WidgetClaims:
    widget_key_id: uuid.UUID
    agent_id: uuid.UUID
    visitor_id: str
    origin: str | None
    license_id: uuid.UUID | None
    expires_at: int


def _signing_key() -> bytes:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"albedo-widget-token-v1", hashlib.sha256).digest()


def issue(widget_key_id: uuid.UUID, agent_id: uuid.UUID, visitor_id: str, origin: str | None,
          license_id: uuid.UUID | None, seconds: int) -> tuple[str, int]:
    """The token and its lifetime in seconds."""
    now = clock.now()
    claims = {"tid": str(current().id), "wk": str(widget_key_id), "agent": str(agent_id),
              "vid": visitor_id, "origin": origin, "lic": str(license_id) if license_id else None,
              "iat": int(now.timestamp()),
              "exp": int((now + timedelta(seconds=seconds)).timestamp()),
              "jti": uuid.uuid4().hex}
    return PREFIX + jwt.encode(claims, _signing_key(), algorithm=ALGORITHM), seconds


def decode(token: str) -> WidgetClaims:
    if not token.startswith(PREFIX):
        raise WidgetTokenError("not a widget token")
    try:
        claims = jwt.decode(token[len(PREFIX):], _signing_key(), algorithms=[ALGORITHM],
                            options={"require": ["exp", "tid", "wk", "agent", "vid"],
                                     "verify_exp": False})
    except jwt.PyJWTError as exc:
        raise WidgetTokenError(str(exc)) from None
    # Expiry against the app clock (tests control it), not PyJWT's wall clock.
    if claims["exp"] <= int(clock.now().timestamp()):
        raise WidgetTokenError("the widget token has expired")
    if not hmac.compare_digest(str(claims["tid"]), str(current().id)):
        raise WidgetTokenError("the token belongs to another site")
    try:
        return WidgetClaims(uuid.UUID(claims["wk"]), uuid.UUID(claims["agent"]),
                            str(claims["vid"]), claims.get("origin"),
                            uuid.UUID(claims["lic"]) if claims.get("lic") else None,
                            int(claims["exp"]))
    except (TypeError, ValueError):
        raise WidgetTokenError("the token's claims are malformed") from None
