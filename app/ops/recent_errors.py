"""Recent error answers by code, for the system page: one Redis hash per minute, kept an hour.

Prometheus has the long history (``albedo_api_errors``); the operator's page wants "what
went wrong in the last hour" without a Prometheus server, across every web process.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)
KEEP_MINUTES = 60
_PREFIX = "albedo:ops:errors:"


def _key(minute: int) -> str:
    return f"{_PREFIX}{minute}"


def note(code: str, now: float | None = None) -> None:
    """Count one error answer with ``code`` (never raises: a Redis blip loses a count)."""
    from app.redis import get_redis

    minute = int((time.time() if now is None else now) // 60)
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.hincrby(_key(minute), code[:64], 1)
        pipe.expire(_key(minute), (KEEP_MINUTES + 1) * 60)
        pipe.execute()
    except Exception:
        log.debug("could not count an error answer", exc_info=True)


def by_code(minutes: int = KEEP_MINUTES, now: float | None = None) -> dict[str, int]:
    """Error answers per code over the last ``minutes`` minutes, most frequent first."""
    from app.redis import get_redis

    last = int((time.time() if now is None else now) // 60)
    pipe = get_redis().pipeline(transaction=False)
    for minute in range(last - minutes + 1, last + 1):
        pipe.hgetall(_key(minute))
    totals: dict[str, int] = {}
    for counts in pipe.execute():
        for code, count in counts.items():
            name = code.decode() if isinstance(code, bytes) else code
            totals[name] = totals.get(name, 0) + int(count)
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))
