"""The queues and their RQ objects, all JSON-serialised (no pickle: jobs are data)."""

from __future__ import annotations

from flask import current_app
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

AGENTS = "agents"
EMAILS = "emails"
WEBHOOKS = "webhooks"
DEFAULT = "default"
# Worker listening order: user-facing work first.
ALL = (AGENTS, EMAILS, WEBHOOKS, DEFAULT)


def queue_prefix() -> str:
    return current_app.extensions["albedo.settings"].extra.get("ALBEDO_QUEUE_PREFIX", "")


def get_queue(name: str, connection: Redis | None = None) -> Queue:
    if name not in ALL:
        raise ValueError(f"unknown queue {name!r}; queues are {', '.join(ALL)}")
    from app.redis import get_redis

    return Queue(queue_prefix() + name, connection=connection or get_redis(),
                 serializer=JSONSerializer)
