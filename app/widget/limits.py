"""The widget's own budgets: per visitor of a key and per client IP, fixed windows in Redis.

Its own rather than flask-limiter's per-request limits because the visitor is known only
after the token (or the exchange body) is read. Without Redis nothing is counted: as for the
app's limiter, an outage of the counters' storage must not become an outage of the widget.
"""

from __future__ import annotations

import logging
import time

from flask import current_app

from app.errors import ApiError
from app.widget.config import widget_config

log = logging.getLogger(__name__)


def take(which: str, ident: str) -> None:
    """Count one hit against the ``which`` budget ("visitor" or "ip"), or raise 429."""
    from app.redis import get_redis

    item = widget_config().rate(which)
    window = item.get_expiry()
    slot = int(time.time() // window)
    prefix = current_app.extensions["albedo.settings"].extra.get("ALBEDO_QUEUE_PREFIX", "")
    key = f"{prefix}albedo-widget-rl:{which}:{ident}:{slot}"
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window + 1)
        used = pipe.execute()[0]
    except Exception:
        log.warning("widget rate limit not counted: Redis unreachable", exc_info=True)
        return
    if used > item.amount:
        retry = max(int((slot + 1) * window - time.time()), 1)
        who = "visitor" if which == "visitor" else "address"
        raise ApiError(429, "rate_limited",
                       f"Too many messages from this {who}: the limit is {item.amount} per "
                       f"{window} seconds.",
                       details={"budget": which, "limit": item.amount},
                       headers={"Retry-After": str(retry)})
