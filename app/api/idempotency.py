"""Idempotency-Key, the one rule for every POST that takes the header.

* The same key with the same request answers with what the first request created (the same
  execution), however often it is sent, for 24 hours.
* The same key with a different request is a client bug (a reused key): 422
  ``idempotency_key_reused``, and nothing is created.
* After 24 hours the key is forgotten: the recovery sweep clears it, and a request that finds
  an older one treats it as unused.

A key belongs to one caller (user) within one tenant. What counts as "the same request" is a
SHA-256 over the parts of the request that decide what is created (the endpoint's target and
its body), in canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from app.errors import ApiError

HEADER = "Idempotency-Key"
KEPT = timedelta(hours=24)
MAX_LENGTH = 255


def checked(key: str | None) -> str | None:
    """The key, or None without one; a key that is too long is refused (422)."""
    if not key:
        return None
    if len(key) > MAX_LENGTH:
        raise ApiError(422, "invalid_idempotency_key",
                       f"Idempotency-Key is at most {MAX_LENGTH} characters.")
    return key


def fingerprint(*parts: Any) -> str:
    """The request's identity: SHA-256 over its deciding parts in canonical JSON."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_expired(created_at: datetime, now: datetime) -> bool:
    return created_at < now - KEPT


def ensure_same(stored: str | None, current: str) -> None:
    """Refuse a key that was used with another request (rows from before fingerprints were
    stored have none, and are taken as the same)."""
    if stored is not None and stored != current:
        raise ApiError(422, "idempotency_key_reused",
                       "This Idempotency-Key was used with a different request; use a new "
                       "key for a new request.", {"header": HEADER})
