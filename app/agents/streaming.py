"""Live events of an execution: a Redis stream per execution, served as Server-Sent Events.

The worker appends ``status``, ``token``, ``tool`` and a final ``end`` event as it goes. Redis
stream ids are the SSE event ids, so a client that reconnects with ``Last-Event-ID`` resumes
exactly after the last event it saw. The stream outlives the execution for a day, so a late
reader still gets the whole story; heartbeats (SSE comments) keep proxies from closing an
idle connection.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, stream_with_context
from redis.commands.core import Script

from app.redis import get_redis

STREAM_TTL_SECONDS = 24 * 3600
CANCEL_TTL_SECONDS = 24 * 3600
MAX_EVENTS = 20_000
# No caching, and no buffering by a reverse proxy (nginx honours X-Accel-Buffering).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _stream_key(execution_id: str) -> str:
    return f"agents:stream:{execution_id}"


def _cancel_key(execution_id: str) -> str:
    return f"agents:cancel:{execution_id}"


def publish(execution_id: str, kind: str, data: dict[str, Any]) -> str:
    redis = get_redis()
    key = _stream_key(execution_id)
    pipe = redis.pipeline(transaction=False)
    pipe.xadd(key, {"type": kind, "data": json.dumps(data)}, maxlen=MAX_EVENTS,
              approximate=True)
    pipe.expire(key, STREAM_TTL_SECONDS)
    event_id = pipe.execute()[0]
    return event_id.decode() if isinstance(event_id, bytes) else event_id


# Appends the event unless the execution's cancel flag is set, in one round trip: a run
# checked the flag, then published, for every piece of text (two round trips a token).
_PUBLISH_UNLESS_CANCELLED = Script(None, b"""
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'type', ARGV[1],
                      'data', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return id
""")  # bytes, so no client is needed to name it: each call passes its client


def publish_unless_cancelled(execution_id: str, kind: str, data: dict[str, Any]) -> str | None:
    """Like :func:`publish`, unless a cancel was requested: then nothing is appended and the
    answer is None (the check and the append are one atomic step)."""
    event_id = _PUBLISH_UNLESS_CANCELLED(
        keys=[_stream_key(execution_id), _cancel_key(execution_id)],
        args=[kind, json.dumps(data), MAX_EVENTS, STREAM_TTL_SECONDS], client=get_redis())
    if event_id is None:
        return None
    return event_id.decode() if isinstance(event_id, bytes) else event_id


def request_cancel(execution_id: str) -> None:
    get_redis().set(_cancel_key(execution_id), b"1", ex=CANCEL_TTL_SECONDS)


def cancel_requested(execution_id: str) -> bool:
    return bool(get_redis().exists(_cancel_key(execution_id)))


def read(execution_id: str, after: str = "0", block_ms: int | None = None,
         count: int = 500) -> list[tuple[str, str, dict[str, Any]]]:
    """Events after ``after`` as (id, type, data); blocks up to ``block_ms`` for new ones."""
    answer = get_redis().xread({_stream_key(execution_id): after}, count=count, block=block_ms)
    events: list[tuple[str, str, dict[str, Any]]] = []
    for _key, entries in answer or []:
        for event_id, fields in entries:
            ident = event_id.decode() if isinstance(event_id, bytes) else event_id
            kind = fields[b"type"].decode()
            events.append((ident, kind, json.loads(fields[b"data"])))
    return events


def in_tenant(events: Iterator[str]) -> Iterator[str]:
    """Run a response generator in the request's tenant: the server iterates it after the
    request's own tenant context is gone."""
    from tenants.context import activate, current

    tenant = current()

    def run() -> Iterator[str]:
        with activate(tenant):
            yield from events

    return run()


def valid_event_id(value: str | None) -> str:
    """A Last-Event-ID we can resume from, or "0" (from the start) for anything else."""
    if not value:
        return "0"
    head, _, tail = value.partition("-")
    return value if head.isdigit() and (not tail or tail.isdigit()) else "0"


def end_data(status: str, code: str | None = None,
             message: str | None = None) -> dict[str, Any]:
    """The ``end`` event's data: the final status, and the error if there is one."""
    data: dict[str, Any] = {"status": status}
    if code:
        data["error"] = {"code": code, "message": message}
    return data


def follow(execution_id: str, after: str = "0", heartbeat_seconds: float = 15.0,
           max_seconds: float = 600.0) -> Iterator[list[tuple[str, str, dict[str, Any]]] | None]:
    """The execution's events in batches, from ``after`` on; None when ``heartbeat_seconds``
    passed with nothing new. Ends after ``max_seconds``, when the client goes away or when the
    worker shuts down (see app/streamhub.py).

    What is already in the stream is read at once; then the stream waits on the process's
    stream hub, which holds no Redis connection or thread for it. Closing this generator
    (the caller returns, or the server closes the response) releases the subscription.
    """
    from flask import current_app, has_request_context, request

    from app import streamhub

    deadline = time.monotonic() + max_seconds
    sock = streamhub.client_socket(request.environ) if has_request_context() else None
    # Subscribed first, then caught up: nothing appended in between is missed, and the hub's
    # copies of what the catch-up read are dropped by the subscription's cursor.
    with streamhub.subscription(current_app._get_current_object(), _stream_key(execution_id),
                                after, sock) as subscription:
        while True:
            events = read(execution_id, subscription.after)
            if events:
                subscription.after = events[-1][0]
                yield events
            if len(events) < 500:
                break
        while (left := deadline - time.monotonic()) > 0:
            got = subscription.get(timeout=min(heartbeat_seconds, left))
            if got in (streamhub.CLOSED, streamhub.SHUTDOWN):
                return
            if got is None:
                yield None
            elif got:
                yield got


def sse(execution_id: str, after: str = "0", heartbeat_seconds: float = 15.0,
        max_seconds: float = 600.0,
        finished: Callable[[], dict[str, Any] | None] | None = None) -> Iterator[str]:
    """SSE lines until the ``end`` event (or ``max_seconds``: the client reconnects).

    ``finished`` is asked when nothing arrives; it answers the end data once the execution is
    over (else None). An execution can be over without its ``end`` event in the stream: the
    worker commits the outcome just before publishing it, and streams expire. The client then
    gets the end event made from the row instead of waiting forever or missing the status.
    """
    yield "retry: 2000\n\n"
    for events in follow(execution_id, after, heartbeat_seconds, max_seconds):
        if events is None:
            ending = finished() if finished is not None else None
            if ending is not None and not read(execution_id, after):
                yield f"event: end\ndata: {json.dumps(ending)}\n\n"
                return
            yield ": heartbeat\n\n"
            continue
        for event_id, kind, data in events:
            after = event_id
            yield f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"
            if kind == "end":
                return


def execution_response(execution_id: uuid.UUID, last_event_id: str | None) -> Response:
    """The ``text/event-stream`` response for one execution the caller may read.

    No transaction stays open for the stream's lifetime: the caller's read is committed
    here, and ``finished`` reads the row afresh (ending its snapshot) on each idle beat.
    """
    from app.agents.config import agents_config
    from app.agents.models import Execution
    from app.extensions import db

    db.session.commit()
    # Redis carries the stream: without it, a clean 503 now (app/errors.py) rather than a
    # 200 whose body breaks off.
    get_redis().ping()

    def finished() -> dict[str, Any] | None:
        row = db.session.get(Execution, execution_id)
        if row is None:
            ending: dict[str, Any] | None = {}  # deleted (with its agent): nothing to wait for
        elif row.is_terminal:
            ending = end_data(row.status, row.error_code, row.error_message)
        else:
            ending = None
        db.session.commit()
        return ending

    events = sse(str(execution_id), valid_event_id(last_event_id),
                 heartbeat_seconds=agents_config().sse_heartbeat_seconds, finished=finished)
    return Response(stream_with_context(in_tenant(events)), mimetype="text/event-stream",
                    headers=SSE_HEADERS)
