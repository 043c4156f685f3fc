"""The app's Redis client: REDIS_URL, or the embedded server when none is configured."""

from __future__ import annotations

import logging
import os

import redis
from flask import Flask, current_app
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

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


class ScriptLine:
    """Connections of their own for one hot script, used without the client's machinery.

    redis-py's ``execute_command`` (retries, the pool's lock and fork check, response
    callbacks) cost more CPU than the round trip it wraps: ~65 µs a call on this machine
    against ~45 µs for the send and the read themselves. The rate budgets' script runs on
    every API request, so it gets its own few connections, made by the client's pool (same
    address, timeouts and health checks) and handed to one caller at a time; a connection
    that fails is closed and the error raised as the client would raise it.
    """

    MAX_IDLE = 8

    def __init__(self, client: redis.Redis, text: str):
        self.client = client
        self.text = text
        self.sha = _sha1(text)
        self._idle: list = []
        self._pid = os.getpid()

    def __call__(self, keys: list, args: list):
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._idle, self._pid = [], os.getpid()
        for attempt in (1, 2):
            try:
                connection = self._idle.pop()
            except IndexError:
                connection = self.client.connection_pool.make_connection()
            try:
                try:
                    reply = self._send(connection, keys, args)
                except NoScriptError:
                    self.client.script_load(self.text)  # after a restart or a SCRIPT FLUSH
                    reply = self._send(connection, keys, args)
            except RedisConnectionError:
                # The server closed it (a restart, a killed client): so it did every idle
                # one. Once more on a new connection, as the client's own retry would; a
                # timeout is not retried (the script may have run).
                connection.disconnect()
                self._drop_idle()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                connection.disconnect()
                raise
            if len(self._idle) < self.MAX_IDLE:
                self._idle.append(connection)
            else:
                connection.disconnect()
            return reply
        raise AssertionError("unreachable")

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.disconnect()

    def _send(self, connection, keys: list, args: list):
        connection.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
        return connection.read_response()


def _sha1(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324  (Redis names scripts so)


def script_line(text: str) -> ScriptLine:
    """``text``'s line on this app's client (a new one when the client was swapped)."""
    client = get_redis()
    lines = current_app.extensions.setdefault("albedo.redis_script_lines", {})
    line = lines.get(text)
    if line is None or line.client is not client:
        line = lines[text] = ScriptLine(client, text)
    return line


def bump_counters(keys: list[str], ttl: int, what: str) -> None:
    """INCR each of ``keys`` (kept ``ttl`` seconds) in one round trip; a failure is logged,
    never raised: counters that tell caches they are stale must not fail the commit that
    moved them (the caches' maximum age bounds a lost bump)."""
    if not keys:
        return
    try:
        pipe = get_redis().pipeline(transaction=False)
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, ttl)
        pipe.execute()
    except Exception:
        logging.getLogger(__name__).warning("could not bump %s %s", what, keys, exc_info=True)
