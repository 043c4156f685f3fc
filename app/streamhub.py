"""One reader per process for every open event stream (execution streams, the OpenAI-compatible
stream, widget chats).

An open stream used to hold a Redis connection blocked in ``XREAD`` (and, on a threaded
server, an OS thread). Here a stream is only a :class:`Subscription`: a queue and a cursor in
the process's :class:`StreamHub`. One hub thread (a greenlet under gunicorn's gevent worker,
which monkey-patches ``threading``) reads every subscribed Redis stream with a single blocking
``XREAD`` on one connection and hands each event to the subscribers of its key. So a thousand
open streams cost a thousand queue entries and one Redis connection, not a thousand of each.

A stream's resources are released at once, in three cases:

* the client goes away: the hub polls the subscribers' client sockets (``POLLRDHUP``, without
  blocking) on every pass, at least once a second, and ends their streams;
* the worker shuts down: gunicorn's ``post_worker_init`` hook (gunicorn.conf.py) hands the hub
  the worker, and once it stops being alive every stream ends with a ``retry`` hint, so clients
  reconnect to another worker instead of waiting out the graceful timeout;
* the response is closed (the server's ``close()`` on the generator): the subscription's
  ``finally`` unsubscribes it.

``open_streams()`` is the in-process gauge of open streams (tests and the bench read it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import select
import threading
import uuid
from collections.abc import Callable
from typing import Any

import redis

log = logging.getLogger(__name__)

Event = tuple[str, str, dict[str, Any]]
CLOSED = "closed"  # the client went away
SHUTDOWN = "shutdown"  # the worker is stopping
BLOCK_MS = 1000  # longest a pass waits: the bound on noticing a gone client or a shutdown
_POLL_FLAGS = getattr(select, "POLLRDHUP", 0x2000) | select.POLLHUP | select.POLLERR
_ids = itertools.count(1)


def _original_poll() -> Callable[[], Any] | None:
    """``select.poll`` as the OS gives it: gevent's monkey-patching removes it, and a zero
    timeout poll never blocks, so the original is safe inside a greenlet."""
    try:
        from gevent import monkey

        if monkey.is_module_patched("select"):
            return monkey.get_original("select", "poll")
    except ImportError:
        pass
    return getattr(select, "poll", None)


def _stream_id_key(ident: str) -> tuple[int, int]:
    head, _, tail = ident.partition("-")
    return int(head), int(tail or 0)


class Subscription:
    """One open stream: events of ``key`` after ``after``, pushed by the hub."""

    def __init__(self, hub: StreamHub, key: str, after: str, sock: Any = None) -> None:
        self.id = next(_ids)
        self.hub = hub
        self.key = key
        self.after = after
        self.sock = sock
        self.queue: queue.Queue[list[Event] | str] = queue.Queue()
        self.closed = False

    def get(self, timeout: float) -> list[Event] | str | None:
        """New events, or CLOSED / SHUTDOWN, or None after ``timeout`` with nothing new."""
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, str):
            return item
        fresh = [e for e in item if _stream_id_key(e[0]) > _stream_id_key(self.after)]
        if fresh:
            self.after = fresh[-1][0]
        return fresh

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamHub:
    """The process's reader of subscribed Redis streams (see the module docstring)."""

    def __init__(self, connect: Callable[[], redis.Redis], wake_prefix: str = "") -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._by_key: dict[str, dict[int, Subscription]] = {}
        self._subscriptions: dict[int, Subscription] = {}
        self._cursors: dict[str, str] = {}
        self._has_work = threading.Event()
        # Registering a key while the hub blocks in XREAD appends to this stream, which the
        # XREAD includes: the hub wakes and reads again with the new key at once.
        self._wake_key = f"{wake_prefix}streamhub:wake:{os.getpid()}:{uuid.uuid4().hex}"
        self._wake_cursor = "0"
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None
        self.is_stopping: Callable[[], bool] = lambda: False
        self.stopped = False

    # -- subscribers -------------------------------------------------------------------------
    def subscribe(self, key: str, after: str, sock: Any = None) -> Subscription:
        subscription = Subscription(self, key, after, sock)
        with self._lock:
            self._subscriptions[subscription.id] = subscription
            self._by_key.setdefault(key, {})[subscription.id] = subscription
            cursor = self._cursors.get(key)
            if cursor is None or _stream_id_key(after) < _stream_id_key(cursor):
                self._cursors[key] = after
            self._ensure_thread()
        self._has_work.set()
        self._wake()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.pop(subscription.id, None)
            subscribers = self._by_key.get(subscription.key)
            if subscribers is not None:
                subscribers.pop(subscription.id, None)
                if not subscribers:
                    del self._by_key[subscription.key]
                    self._cursors.pop(subscription.key, None)

    def open_count(self) -> int:
        return len(self._subscriptions)

    # -- the reader --------------------------------------------------------------------------
    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _wake(self) -> None:
        try:
            self._redis().xadd(self._wake_key, {"w": "1"}, maxlen=1, approximate=False)
            self._redis().expire(self._wake_key, 3600)
        except redis.RedisError:
            log.warning("stream hub: could not wake the reader", exc_info=True)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="stream-hub", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self.stopped:
            if not self._subscriptions:
                self._has_work.clear()
                if not self._subscriptions:
                    self._has_work.wait(BLOCK_MS / 1000)
                continue
            try:
                self._pass()
            except redis.RedisError:
                log.warning("stream hub: Redis read failed; retrying", exc_info=True)
                self._has_work.wait(0.5)
            except Exception:  # the reader must outlive any one bad event
                log.exception("stream hub: unexpected error")
                self._has_work.wait(0.5)

    def _pass(self) -> None:
        if self.is_stopping():
            self._end_all(SHUTDOWN)
            return
        with self._lock:
            streams = dict(self._cursors)
        streams[self._wake_key] = self._wake_cursor
        answer = self._redis().xread(streams, count=500, block=BLOCK_MS)
        for raw_key, entries in answer or []:
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            if key == self._wake_key:
                last = entries[-1][0]
                self._wake_cursor = last.decode() if isinstance(last, bytes) else last
                continue
            events = [_decoded(ident, fields) for ident, fields in entries]
            with self._lock:
                if key in self._cursors:
                    self._cursors[key] = events[-1][0]
                subscribers = list(self._by_key.get(key, {}).values())
            for subscription in subscribers:
                subscription.queue.put(events)
        self._check_clients()

    def _check_clients(self) -> None:
        poll_factory = _original_poll()
        if poll_factory is None:
            return
        with self._lock:
            watched = {s.sock.fileno(): s for s in self._subscriptions.values()
                       if s.sock is not None and _fileno(s.sock) >= 0}
        if not watched:
            return
        poller = poll_factory()
        for fd in watched:
            poller.register(fd, _POLL_FLAGS)
        for fd, flags in poller.poll(0):
            if flags & _POLL_FLAGS and fd in watched:
                gone = watched[fd]
                self.unsubscribe(gone)
                gone.queue.put(CLOSED)

    def _end_all(self, reason: str) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions.values())
        for subscription in subscriptions:
            self.unsubscribe(subscription)
            subscription.queue.put(reason)
        self._has_work.wait(BLOCK_MS / 1000)

    def stop(self) -> None:
        self.stopped = True
        self._end_all(SHUTDOWN)
        self._has_work.set()


def _fileno(sock: Any) -> int:
    try:
        return sock.fileno()
    except (OSError, ValueError):
        return -1


def _decoded(ident: Any, fields: dict[bytes, bytes]) -> Event:
    ident = ident.decode() if isinstance(ident, bytes) else ident
    return ident, fields[b"type"].decode(), json.loads(fields[b"data"])


# -- the process's hub, per app ------------------------------------------------------------
_worker_alive: Callable[[], bool] | None = None


def watch_worker(is_alive: Callable[[], bool]) -> None:
    """Called by gunicorn's post_worker_init hook: streams end when the worker stops."""
    global _worker_alive
    _worker_alive = is_alive


def hub_of(app: Any) -> StreamHub:
    hub = app.extensions.get("albedo.stream_hub")
    if hub is None:
        from app.redis import connect

        settings = app.extensions["albedo.settings"]
        hub = StreamHub(lambda: connect(settings),
                        wake_prefix=settings.extra.get("ALBEDO_QUEUE_PREFIX", ""))
        hub.is_stopping = lambda: _worker_alive is not None and not _worker_alive()
        app.extensions["albedo.stream_hub"] = hub
    return hub


def open_streams(app: Any) -> int:
    """How many event streams this process holds open (the gauge)."""
    hub = app.extensions.get("albedo.stream_hub")
    return hub.open_count() if hub is not None else 0


def client_socket(environ: dict[str, Any]) -> Any:
    """The client's socket, where the server exposes it (gunicorn), for disconnect checks."""
    return environ.get("gunicorn.socket") or environ.get("gunicorn.sock")


@contextlib.contextmanager
def subscription(app: Any, key: str, after: str, sock: Any = None):
    sub = hub_of(app).subscribe(key, after, sock)
    try:
        yield sub
    finally:
        sub.close()
