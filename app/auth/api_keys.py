"""API keys: ``ak_<8 hex>_<43 chars>``. The first part is public (shown in lists, locates the
row); the whole key is stored only as a SHA-256 hash. A high-entropy random secret needs no
slow hash: there is nothing to brute-force that a fast hash would make easier."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app import clock
from app.auth.models import ApiKey, User
from app.auth.principal import SCOPES
from app.billing.limits import ensure_room
from app.errors import ApiError
from app.extensions import db

log = logging.getLogger(__name__)
PREFIX = "ak_"
USAGE_KEY = "albedo:api-key-last-used"
_FLUSH_GATE = "albedo:api-key-last-used:flush-gate"


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_key(user: User, name: str, scopes: list[str],
               expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """The new key and its secret, which is never retrievable again."""
    problems: dict[str, str] = {}
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        problems["scopes"] = f"unknown scopes: {', '.join(unknown)}"
    if not scopes:
        problems["scopes"] = "give at least one scope"
    if not (name or "").strip():
        problems["name"] = "cannot be empty"
    if expires_at is not None and expires_at <= clock.now():
        problems["expires_at"] = "must be in the future"
    if problems:
        raise ApiError(422, "validation_failed", "The API key could not be created.",
                       {"fields": problems})
    ensure_room("api_keys", user.id)  # a customer's plan; staff keys the reseller's
    public = PREFIX + secrets.token_hex(4)
    raw = f"{public}_{secrets.token_urlsafe(32)}"
    key = ApiKey(user_id=user.id, name=name.strip(), prefix=public, last_four=raw[-4:],
                 key_hash=_hash(raw), scopes=sorted(set(scopes)), expires_at=expires_at)
    db.session.add(key)
    db.session.flush()
    return key, raw


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX) and token.count("_") >= 2


def owner_of(raw: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(key id, user id) of the key ``raw`` names by its public part, whatever its state."""
    row = db.session.execute(select(ApiKey.id, ApiKey.user_id).where(
        ApiKey.prefix == raw[: len(PREFIX) + 8])).first()
    return (row[0], row[1]) if row is not None else None


def authenticate(raw: str, note: bool = True) -> tuple[ApiKey, User] | None:
    """The live key (of the current tenant) and its user, or None; ``note`` records the use."""
    public = raw[: len(PREFIX) + 8]
    key = db.session.scalars(select(ApiKey).where(ApiKey.prefix == public)).first()
    # Hash compared in constant time even when no row matched, so timing tells nothing.
    expected = key.key_hash if key is not None else _hash("absent")
    if not hmac.compare_digest(expected, _hash(raw)) or key is None:
        return None
    if key.revoked_at is not None or (key.expires_at and key.expires_at <= clock.now()):
        return None
    user = db.session.get(User, key.user_id)
    if user is None or not user.is_active:
        return None
    if note:
        note_use(key.tenant_id, key.id)
    return key, user


# Per process: when each key's use was last sent to Redis (app clock).
_last_noted: dict[tuple[uuid.UUID, uuid.UUID], datetime] = {}
NOTE_EVERY = timedelta(seconds=1)


def note_use(tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Last use goes to Redis (one HSET), flushed to the database at most once a minute.

    A process sends a key's use at most once a second (``NOTE_EVERY``): the time is shown to
    the second and flushed by the minute, and a round trip per request was a third of a warm
    API-key request's Redis traffic."""
    now = clock.now()
    previous = _last_noted.get((tenant_id, key_id))
    if previous is not None and previous <= now < previous + NOTE_EVERY:
        return
    if len(_last_noted) > 10_000:
        _last_noted.clear()
    _last_noted[(tenant_id, key_id)] = now
    _note_use(tenant_id, key_id, now)


def _note_use(tenant_id: uuid.UUID, key_id: uuid.UUID, now: datetime) -> None:
    from app.redis import get_redis
    from jobs.enqueue import enqueue

    try:
        redis = get_redis()
        redis.hset(USAGE_KEY, f"{tenant_id}:{key_id}", now.isoformat())
        if redis.set(_FLUSH_GATE, "1", nx=True, ex=60):
            enqueue("auth.flush_key_usage", tenant_id=None, job_id="flush-key-usage",
                    delay_seconds=60)
    except Exception:  # usage tracking must never fail a request
        log.warning("could not record API key use", exc_info=True)


def pending_last_used(key: ApiKey) -> datetime | None:
    """The freshest last-use time: Redis (not yet flushed) or the row."""
    from app.redis import get_redis

    try:
        raw = get_redis().hget(USAGE_KEY, f"{key.tenant_id}:{key.id}")
    except Exception:
        raw = None
    seen = datetime.fromisoformat(raw.decode()) if raw else None
    if seen is not None and seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    candidates = [t for t in (seen, key.last_used_at) if t is not None]
    return max(candidates) if candidates else None


def list_keys(user_id: uuid.UUID) -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).where(ApiKey.user_id == user_id)
                                   .order_by(ApiKey.created_at.desc())))


def get_key(key_id: uuid.UUID, user_id: uuid.UUID | None) -> ApiKey | None:
    """A key of this tenant; with ``user_id``, only that user's."""
    stmt = select(ApiKey).where(ApiKey.id == key_id)
    if user_id is not None:
        stmt = stmt.where(ApiKey.user_id == user_id)
    return db.session.scalars(stmt).first()


def revoke_key(key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = clock.now()
