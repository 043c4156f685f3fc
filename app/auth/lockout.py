"""Sign-in throttling: after repeated failures an account is locked for a while.

Counted in Redis per tenant and email (so guessing at acme does not lock the same email at
globex), for both the sign-in page and the token endpoint. Per-IP throttling is the rate
limiter's job (app.api.limits); this stops a distributed guesser aiming at one account.
"""

from __future__ import annotations

import hashlib
import logging

from app.redis import get_redis
from tenants.context import current

log = logging.getLogger(__name__)
MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def _key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"albedo:signin-failures:{current().id}:{digest}"


def is_locked(email: str) -> bool:
    try:
        return int(get_redis().get(_key(email)) or 0) >= MAX_FAILURES
    except Exception:
        log.warning("lockout check unavailable (Redis)", exc_info=True)
        return False


def note_failure(email: str) -> bool:
    """Count a failure; True when this failure locks the account."""
    try:
        # SET NX starts the window on the first failure; INCR counts inside it. (Works on
        # Redis 6, which the embedded server is: EXPIRE NX needs Redis 7.)
        pipe = get_redis().pipeline()
        pipe.set(_key(email), 0, ex=WINDOW_SECONDS, nx=True)
        pipe.incr(_key(email))
        count = pipe.execute()[1]
    except Exception:
        log.warning("lockout counter unavailable (Redis)", exc_info=True)
        return False
    return count == MAX_FAILURES


def clear(email: str) -> None:
    try:
        get_redis().delete(_key(email))
    except Exception:
        log.warning("lockout reset unavailable (Redis)", exc_info=True)
