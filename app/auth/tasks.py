"""Background work for identity: flushing API-key last-use times from Redis."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update

from app.auth.api_keys import USAGE_KEY
from app.auth.models import ApiKey
from app.extensions import db
from app.redis import get_redis
from jobs.queues import DEFAULT
from jobs.registry import task


@task("auth.flush_key_usage", queue=DEFAULT, tenant_scoped=False, retry_intervals=(30,))
def flush_key_usage() -> int:
    """Write the last-use times gathered in Redis to the api_keys rows (all tenants)."""
    redis = get_redis()
    entries = redis.hgetall(USAGE_KEY)
    written = 0
    for field, value in entries.items():
        _tenant, _, key_id = field.decode().partition(":")
        seen = datetime.fromisoformat(value.decode())
        db.session.execute(
            update(ApiKey).where(ApiKey.id == uuid.UUID(key_id))
            .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < seen))
            .values(last_used_at=seen)
            .execution_options(cross_tenant="flush API key last-use times of every tenant"))
        written += 1
    db.session.commit()
    # Only the fields read are removed; a use recorded meanwhile waits for the next flush.
    for field, value in entries.items():
        if redis.hget(USAGE_KEY, field) == value:
            redis.hdel(USAGE_KEY, field)
    return written
