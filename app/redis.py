"""The app's Redis client: REDIS_URL, or the embedded server when none is configured."""

from __future__ import annotations

import redis
from flask import Flask, current_app
from redis.commands.core import Script

from app.settings import Settings


def redis_url(settings: Settings) -> str:
    """The URL for clients that take one (RQ, flask-limiter); starts the embedded server."""
    if settings.redis_url:
        return settings.redis_url
    from app.embedded_redis import ensure_running

    return f"unix://{ensure_running(settings.instance_path)}"


def connect(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(redis_url(settings), socket_timeout=5, socket_connect_timeout=2,
                                health_check_interval=30)


def get_redis() -> redis.Redis:
    """One client per app (it pools connections), created on first use."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    client = app.extensions.get("albedo.redis")
    if client is None:
        client = connect(app.extensions["albedo.settings"])
        app.extensions["albedo.redis"] = client
    return client


def script(text: str) -> Script:
    """``text`` registered with this app's client (a Redis client may be swapped, as tests
    do to take Redis away: the script follows the client in use)."""
    client = get_redis()
    scripts = current_app.extensions.setdefault("albedo.redis_scripts", {})
    registered = scripts.get(text)
    if registered is None or registered.registered_client is not client:
        registered = scripts[text] = client.register_script(text)
    return registered
