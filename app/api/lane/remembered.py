"""Remembered answers: a route's own answer to a warm read, given again until something it
was read from changes.

Most reads are not one statement over one table that the lane can run itself
(``routes.page_route``): a version visible to some callers only, a license with its policy,
a report of sums. For those a feature declares the tables the answer is read from
(:func:`remembered_route`), and the lane gives a warm read the Flask route's own last answer
to the same caller, host, path and query — under new budgets and a new request id — while
every counter it depends on is unchanged:

* the tables' counters (``freshness``), bumped after every committed change to them;
* the tenant cache's generation and the caller's principal generations, for what the route
  takes from those caches rather than from the database (branding, a suspension, a role);
* the clock, where the answer moves with it: the earliest instant still to come among the
  answer's ``expiry_fields`` (an invitation's ``expires_at``), the next UTC day or month of a
  report's window, or a maximum age ends it; and none is older than ``freshness.MAX_AGE``.

Whether an answer may be remembered is decided by the route's own run, not only by the
declaration: it must be a 200 with a body and no cookie, given under the lane's budgets and
no other, and every statement the route ran must have been a SELECT over the declared
tables (:class:`Recording`, fed by an engine event). A read that wrote, ran SQL that cannot
be read, or read a table not declared is answered as always and not remembered; the log
says so, since its declaration is then wrong.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Flask
from sqlalchemy import TableClause, event
from sqlalchemy.engine import Engine
from sqlalchemy.sql import CompoundSelect, Select
from sqlalchemy.sql.util import find_tables

from app import clock
from app.api import budgets
from app.api.lane import freshness, routes
from app.auth.principal import Principal

log = logging.getLogger(__name__)

PENDING = "albedo.lane.remember"
MAX_BYTES = 32 * 1024 * 1024  # every remembered answer of a process, bodies counted
MAX_BODY = 1024 * 1024  # a larger answer is not remembered


@dataclass(frozen=True)
class Declared:
    rule: str
    tables: tuple[str, ...]
    expiry_fields: frozenset[str]
    moves_at: Callable[[dt.datetime], dt.datetime] | None
    max_age: float | None
    across_tenants: frozenset[str]  # the roles whose answers read every tenant's rows


_DECLARED: dict[str, Declared] = {}


def remembered_route(rule: str, *, tables: Iterable[str], expiry_fields: Iterable[str] = (),
                     moves_at: Callable[[dt.datetime], dt.datetime] | None = None,
                     max_age: float | None = None, across_tenants: Iterable[str] = ()) -> None:
    """Remember the answers of the GET route ``rule``, read from ``tables`` only (none: an
    answer of the code alone).

    Where the answer moves with the clock, it is given until the earliest of: the instants
    still to come among its JSON fields named in ``expiry_fields``; ``moves_at(now)`` (the
    next UTC midnight of a daily window); ``max_age`` seconds. The answers of callers whose
    role is in ``across_tenants`` read rows of every tenant, and are told of a change to any."""
    _DECLARED[rule] = Declared(rule, tuple(sorted(set(tables))), frozenset(expiry_fields),
                               moves_at, max_age, frozenset(across_tenants))


def declared() -> list[Declared]:
    return list(_DECLARED.values())


def bind(app: Flask) -> None:
    """Watch every declared table and register each read in the lane with its route's own
    requirements (the scopes and roles of its ``require``)."""
    from app.extensions import db

    rules = {rule.rule: rule for rule in app.url_map.iter_rules()
             if "GET" in (rule.methods or ())}
    for spec in _DECLARED.values():
        for name in spec.tables:
            freshness.watch(db.metadata.tables[name], across_tenants=bool(spec.across_tenants))
        rule = rules.get(spec.rule)
        if rule is None:
            raise LookupError(f"{spec.rule}: no GET route to remember")
        scopes, roles = _requirements(app.view_functions[rule.endpoint], spec.rule)
        routes.remembered_read(spec.rule, rule.endpoint, scopes=scopes, roles=roles,
                               tables=spec.tables, remember=spec)
    _listen()


def _requirements(view: Callable, rule: str) -> tuple[tuple[str, ...], frozenset[str] | None]:
    method = getattr(getattr(view, "view_class", None), "get", view)
    while method is not None:
        required = getattr(method, "required", None)
        if required is not None:
            return required
        method = getattr(method, "__wrapped__", None)
    raise LookupError(f"{rule}: a remembered read is a route guarded by require()")


def key_of(route: routes.LaneRoute, environ: dict, tenant_id: Any,
           principal: Principal) -> tuple:
    """Everything the route's answer is given for: the caller, and the request as the route
    sees it (path, query, and the host and scheme its links would be made with)."""
    get = environ.get
    return (route.rule, tenant_id, principal.kind, principal.role, principal.scopes,
            principal.user_id, principal.api_key_id, get("PATH_INFO"), get("QUERY_STRING", ""),
            get("HTTP_HOST"), get("wsgi.url_scheme"), get("SCRIPT_NAME", ""),
            get("HTTP_X_FORWARDED_PROTO"), get("HTTP_X_FORWARDED_HOST"),
            get("HTTP_X_FORWARDED_PORT"), get("HTTP_X_FORWARDED_PREFIX"))


def counter_keys(route: routes.LaneRoute, tenant_id: Any, role: str) -> list[str]:
    if role in route.remember.across_tenants:
        return freshness.across_keys_for(route.tables)
    return freshness.keys_for(route.tables, tenant_id)


def _answers(app: Flask) -> freshness.Answers:
    answers = app.extensions.get("albedo.lane_remembered")
    if answers is None:
        answers = app.extensions.setdefault("albedo.lane_remembered",
                                            freshness.Answers(max_rows=MAX_BYTES))
    return answers


def served(app: Flask, key: tuple, counters: tuple) -> tuple[bytes, list] | None:
    """The answer remembered under exactly these counters and still in time, if any."""
    found = _answers(app).get(key, counters)
    if found is None:
        return None
    body, headers, fresh_until = found
    if fresh_until is not None and clock.now().timestamp() >= fresh_until:
        return None
    return body, headers


def headers_for(stored: list, windows: list, now: float, request_id: str) -> list:
    """The remembered answer's headers, with this request's budgets and request id."""
    rates = dict(budgets.window_headers(windows, now))
    return [(name, rates.get(name, request_id if name == "X-Request-ID" else value))
            for name, value in stored]


@dataclass(frozen=True)
class Pending:
    """A read the route answers; its answer is remembered under these counters if it may."""
    app: Flask
    route: routes.LaneRoute
    key: tuple
    counters: tuple
    # Read before the route runs: an expiry passed while it ran ends the answer at once.
    at: dt.datetime


class Recording:
    """What the statements of one route's run read, and whether anything else ran."""

    __slots__ = ("refused", "tables")

    def __init__(self) -> None:
        self.tables: set[str] = set()
        self.refused: str | None = None


_RECORDING: ContextVar[Recording | None] = ContextVar("albedo_lane_recording", default=None)
_listening = False


def _listen() -> None:
    global _listening
    if not _listening:
        event.listen(Engine, "before_cursor_execute", _record)
        _listening = True


def _record(_conn, _cursor, statement, _parameters, context, _executemany) -> None:
    recording = _RECORDING.get()
    if recording is None or recording.refused:
        return
    try:
        _note(recording, statement, context)
    except Exception:  # never the route's failure: only not remembered
        log.exception("could not read a statement's tables")
        recording.refused = "a statement whose tables could not be read"


def _note(recording: Recording, statement: str, context: Any) -> None:
    from tenants.isolation import _SET_RLS

    compiled = getattr(context, "compiled", None)
    clause = getattr(compiled, "statement", None)
    if clause is _SET_RLS:
        return  # row-level security's tenant, set at the start of a transaction
    if not isinstance(clause, Select | CompoundSelect) or context.isinsert \
            or context.isupdate or context.isdelete:
        recording.refused = f"it ran a statement other than a readable SELECT: {statement[:80]!r}"
        return
    # An ORM select's eager loads are only in the statement its compile state made.
    made = getattr(getattr(compiled, "compile_state", None), "statement", None)
    if made is not None:
        clause = made
    recording.tables.update(t.name for t in find_tables(
        clause, check_columns=True, include_aliases=True, include_joins=True)
        if isinstance(t, TableClause))


def through(next_app: Callable, environ: dict, start_response: Callable,
            pending: Pending) -> Iterable[bytes]:
    """The route's answer, remembered when its run shows it may be."""
    recording = Recording()
    seen: list = []

    def start(status: str, headers: list, exc_info: Any = None) -> Any:
        seen[:] = [status, headers]
        return start_response(status, headers, exc_info)

    reset = _RECORDING.set(recording)
    try:
        result = next_app(environ, start)
    finally:
        _RECORDING.reset(reset)
    if not seen or not seen[0].startswith("200 "):
        return result
    problem = _problem(environ, seen[1], recording, pending.route)
    if problem is not None:
        log.log(logging.WARNING if problem[1] else logging.DEBUG,
                "%s is not remembered: %s", pending.route.rule, problem[0])
        return result
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    headers = list(seen[1])
    fresh_until = _fresh_until(body, pending.route.remember, pending.at)
    _answers(pending.app).put(pending.key, pending.counters, (body, headers, fresh_until),
                              weight=len(body))
    return [body]


def _problem(environ: dict, headers: list, recording: Recording,
             route: routes.LaneRoute) -> tuple[str, bool] | None:
    """Why this answer may not be remembered (and whether its declaration is wrong)."""
    if environ.get(budgets.LANE_BUDGETS_ONLY) is not True:
        return "the route took budgets other than the lane's", True
    if recording.refused:
        return recording.refused, False  # a customer's license list that claimed one, say
    undeclared = recording.tables.difference(route.tables)
    if undeclared:
        return f"it read tables it does not declare: {sorted(undeclared)}", True
    length = None
    for name, value in headers:
        lower = name.lower()
        if lower == "set-cookie" or (lower == "vary" and "cookie" in value.lower()):
            return "its answer depends on a cookie", True
        if lower == "content-length":
            length = int(value)
    if length is None or length > MAX_BODY:
        return "its answer is streamed or too large", False
    return None


def _fresh_until(body: bytes, spec: Declared, now_at: dt.datetime) -> float | None:
    """Until when an answer read from ``now_at`` on stands, as far as the clock goes (None:
    while its counters do)."""
    now = now_at.timestamp()
    candidates = []
    if spec.max_age is not None:
        candidates.append(now + spec.max_age)
    if spec.moves_at is not None:
        candidates.append(spec.moves_at(now_at).timestamp())
    if spec.expiry_fields:
        earliest = _earliest(body, spec.expiry_fields, now)
        if earliest is not None:
            candidates.append(earliest)
    return min(candidates) if candidates else None


def _earliest(body: bytes, fields: frozenset[str], now: float) -> float | None:
    """The earliest instant still to come among the answer's ``fields``."""
    earliest: float | None = None
    stack: list[Any] = [orjson.loads(body)]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for name, value in item.items():
                if name in fields and isinstance(value, str):
                    at = dt.datetime.fromisoformat(value).timestamp()
                    if at > now and (earliest is None or at < earliest):
                        earliest = at
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return earliest
