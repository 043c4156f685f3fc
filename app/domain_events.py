"""In-process domain events: a feature announces what happened, the features that care react.

DESIGN.md: features do not call each other's services to announce things. The agents engine
publishes ``execution.finished`` when an execution reaches its final state; billing
subscribes and writes the usage ledger. Handlers run synchronously, in the publisher's
transaction, so a reaction is committed with (and only with) the change it reacts to.
Outbound webhooks are a different thing: they go through ``app.integrations.events.emit``.

Subscriptions are made by each feature's ``init_app`` (not at import), once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[..., Callable[[], None] | None]
_handlers: dict[str, list[Handler]] = {}


def subscribe(name: str, handler: Handler) -> None:
    """Call ``handler(**data)`` on every ``publish(name, **data)``; idempotent."""
    handlers = _handlers.setdefault(name, [])
    if handler not in handlers:
        handlers.append(handler)


def publish(name: str, **data: Any) -> list[Callable[[], None]]:
    """Run every handler of ``name`` now; returns the writes they deferred, which the
    publisher runs (in order) once its own reads are done.

    Why deferred writes: on SQLite a transaction's first write holds the database's one
    write lock until the commit, so a transaction reads first and writes last
    (tests/test_agents_write_lock.py). A handler reads when called and returns a callable
    with its writes. A handler's error is the publisher's: the transaction it shares rolls
    back rather than commit a change without its reaction.
    """
    writes = []
    for handler in list(_handlers.get(name, ())):
        then = handler(**data)
        if then is not None:
            writes.append(then)
    return writes


def subscribers(name: str) -> list[Handler]:
    return list(_handlers.get(name, ()))
