"""Counters that tell the lane's remembered answers they are out of date.

The lane keeps, per process, the last answer of each read it serves (a page of agents for
one caller, one agent), together with the values of the counters the answer depends on,
read in the request's budgets script *before* the rows were read. Every committed change to
a table a lane read selects from bumps that table's counter for the changed row's tenant —
after the commit, from a session event, whatever code path wrote the rows — so the next
read in any process sees a moved counter and reads the database again.

Changes a flush does not show are covered too:

* a row deleted by the database's own cascade (a user's agents when the user is deleted):
  deleting a row of a table the read table cascades from bumps the read table's counter;
* a bulk UPDATE or DELETE statement on one of these tables bumps the current tenant's
  counter, or, with no tenant in context, the table's counter for every tenant.

A bump lost to a Redis outage at that moment is bounded by the answers' maximum age
(``MAX_AGE``); while Redis is down the lane answers nothing at all.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from app import commit_hooks

log = logging.getLogger(__name__)

_PREFIX = "albedo:read-gen:"
EPOCH_KEY = _PREFIX + "epoch"
_TTL = 30 * 24 * 3600  # an expired counter reads as 0: a mismatch, never a false match
MAX_AGE = 60.0
MAX_ROWS = 20_000  # per read and process: a few MB

# table name -> the tables whose deleted rows take rows of it along (ON DELETE CASCADE/SET NULL)
_WATCHED: dict[str, set[str]] = {}
# Tables some read takes across tenants (the platform's): each change also bumps ``any_key``.
_ACROSS: set[str] = set()


def tenant_key(table: str, tenant_id: uuid.UUID | str) -> str:
    return f"{_PREFIX}{table}:{tenant_id}"


def every_tenant_key(table: str) -> str:
    return f"{_PREFIX}{table}:*"


def any_key(table: str) -> str:
    return f"{_PREFIX}{table}:any"


def across_keys_for(tables: Iterable[str]) -> list[str]:
    """The counters of an answer reading ``tables`` across tenants: any change to any row."""
    tables = list(tables)
    return [EPOCH_KEY, *(any_key(table) for table in tables)] if tables else []


def keys_for(tables: Iterable[str], tenant_id: uuid.UUID) -> list[str]:
    """The counters an answer reading ``tables`` for this tenant depends on, after this
    Redis's epoch: a Redis that lost its data (it keeps nothing on disk) starts its counters
    at zero again, which must not match an answer remembered under an earlier zero."""
    tables = list(tables)
    if not tables:
        return []
    out = [EPOCH_KEY]
    for table in tables:
        out += [tenant_key(table, tenant_id), every_tenant_key(table)]
    return out


def watch(table: Table, *, across_tenants: bool = False) -> None:
    """Bump ``table``'s counters on every committed change to it (installed once); with
    ``across_tenants``, its ``any_key`` too."""
    if across_tenants:
        _ACROSS.add(table.name)
    parents = set()
    for key in table.foreign_keys:
        if (key.ondelete or "").upper() in ("CASCADE", "SET NULL"):
            parents.add(key.column.table.name)
    _WATCHED.setdefault(table.name, set()).update(parents)
    _install()


def _key(table: str, tenant: Any, keys: set[str]) -> None:
    keys.add(tenant_key(table, tenant) if tenant else every_tenant_key(table))
    if table in _ACROSS:
        keys.add(any_key(table))


def _changed_keys(session: Session) -> set[str]:
    keys: set[str] = set()
    if not _WATCHED:
        return keys
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(type(obj), "__table__", None)
        if table is None:
            continue
        tenant = getattr(obj, "tenant_id", None)
        if table.name in _WATCHED and (obj not in session.dirty or session.is_modified(obj)):
            _key(table.name, tenant, keys)
        if obj in session.deleted:
            for watched, parents in _WATCHED.items():
                if table.name in parents:
                    _key(watched, tenant, keys)
    return keys


def _bulk_keys(state) -> set[str]:
    from tenants.context import current_or_none

    if not _WATCHED or not (state.is_update or state.is_delete or state.is_insert):
        return set()
    table = getattr(state.statement, "table", None)
    name = getattr(table, "name", None)
    concerned = [w for w, parents in _WATCHED.items()
                 if w == name or (state.is_delete and name in parents)]
    tenant = current_or_none()
    keys: set[str] = set()
    for watched in concerned:
        _key(watched, tenant.id if tenant else None, keys)
    return keys


def bump(keys: Iterable[str]) -> None:
    """Increment these counters now (never raises: a lost bump only ages out)."""
    from app.redis import bump_counters

    bump_counters(sorted(set(keys)), _TTL, "read generations")


def _install() -> None:
    commit_hooks.on_commit("lane_reads", _changed_keys, bump, bulk=_bulk_keys)


def has_epoch(counters: tuple[str, ...]) -> bool:
    """Whether the counters were read under an epoch; if not, one is set for next time."""
    if counters and counters[0] != "0":
        return True
    from app.redis import get_redis

    try:
        get_redis().set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
    except Exception:
        log.warning("could not set the read generations' epoch", exc_info=True)
    return False


def answers_of(name: str) -> Answers:
    """This app's remembered answers of the read ``name``."""
    from flask import current_app

    by_name = current_app.extensions.setdefault("albedo.lane_answers", {})
    answers = by_name.get(name)
    if answers is None:
        answers = by_name.setdefault(name, Answers())
    return answers


class Answers:
    """The last answers of one lane read in this process, each under the counter values it
    was read with; none older than ``MAX_AGE``, and at most ``MAX_ROWS`` rows in all (a page
    weighs its items, an object one), the least recently stored dropped first."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self._answers: OrderedDict[tuple, tuple[tuple, float, Any, int]] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()
        self.max_rows = max_rows
        self.monotonic = time.monotonic

    def get(self, key: tuple, counters: tuple) -> Any | None:
        found = self._answers.get(key)
        if found is None or found[0] != counters or self.monotonic() - found[1] > MAX_AGE:
            return None
        return found[2]

    def put(self, key: tuple, counters: tuple, answer: Any, weight: int | None = None) -> None:
        """Remember ``answer``; it weighs ``weight``, by default its items (a page) or 1."""
        rows = weight if weight is not None else len(answer["items"]) if isinstance(
            answer, dict) and isinstance(answer.get("items"), list) else 1
        rows = max(rows, 1)
        with self._lock:
            previous = self._answers.pop(key, None)
            if previous is not None:
                self._rows -= previous[3]
            self._answers[key] = (counters, self.monotonic(), answer, rows)
            self._rows += rows
            while self._rows > self.max_rows and self._answers:
                self._rows -= self._answers.popitem(last=False)[1][3]

    def __len__(self) -> int:
        return len(self._answers)
