"""The reads the lane answers, declared by the features that own them.

A feature registers a read with the same parts its Flask route uses — the rule, the scopes
and roles of its ``require``, the statement its service builds, the order its pagination
uses, its response schema — so the lane is a second way of running the route's own
definition, not a second definition. Two shapes cover the API's reads:

* :func:`page_route`: a cursor page (``?cursor=&limit=``) of what ``statement(principal)``
  selects, newest first, exactly as ``app.api.pagination.paginate`` pages it;
* :func:`item_route`: the one row ``statement(principal, **path)`` selects, or the route's
  own 404 when there is none.

``answer_route`` takes any other answer function (``/me``). An answer of ``None`` means "the
route answers this one" (not found, a parameter to refuse): the lane never writes an error.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema
from sqlalchemy import Integer, Table, Uuid, bindparam
from sqlalchemy.engine import Engine

from app.api.lane import freshness
from app.api.lane.prepared import NotPreparable, PreparedRead
from app.api.pagination import MAX_LIMIT, page_statement
from app.auth.principal import Principal
from tenants.context import TenantInfo

_UUID = "[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}"
_LIMIT = re.compile(r"^[0-9]{1,3}$")
_UUID_TEXT = re.compile(f"^{_UUID}\\Z")


@dataclass
class LaneRequest:
    tenant: TenantInfo
    principal: Principal
    path: dict[str, Any]
    query: dict[str, str]
    engine: Engine
    # The route's table counters (``freshness``), read before any row: a remembered
    # answer read under the same values is still the database's answer.
    counters: tuple[str, ...] = ()


Answer = Callable[[LaneRequest], Any]


@dataclass(frozen=True)
class LaneRoute:
    rule: str  # the Flask rule, as in the metrics' route label
    scopes: tuple[str, ...]
    roles: frozenset[str] | None
    answer: Answer
    query: frozenset[str]
    pattern: re.Pattern[str]
    uuids: frozenset[str]  # path parameters converted to UUIDs
    tables: tuple[str, ...] = ()  # what its answers are read from (``freshness``)
    endpoint: str = ""
    # A read whose answer is the Flask route's own, remembered (``remembered``).
    remember: Any = None


_ROUTES: dict[str, LaneRoute] = {}


def routes() -> list[LaneRoute]:
    return list(_ROUTES.values())


def _pattern(rule: str) -> tuple[re.Pattern[str], frozenset[str]]:
    parts, uuids, at = [], set(), 0
    for match in re.finditer(r"<(?:(uuid):)?(\w+)>", rule):
        parts.append(re.escape(rule[at:match.start()]))
        name = match.group(2)
        if match.group(1):
            uuids.add(name)
            parts.append(f"(?P<{name}>{_UUID})")
        else:
            parts.append(f"(?P<{name}>[^/]+)")
        at = match.end()
    parts.append(re.escape(rule[at:]))
    return re.compile("".join(parts) + r"\Z"), frozenset(uuids)


def answer_route(rule: str, answer: Answer, *, scopes: tuple[str, ...] = (),
                 roles: tuple[str, ...] | None = None, query: tuple[str, ...] = (),
                 tables: tuple[str, ...] = ()) -> None:
    pattern, uuids = _pattern(rule)
    _ROUTES[rule] = LaneRoute(rule, tuple(scopes), frozenset(roles) if roles else None, answer,
                              frozenset(query), pattern, uuids, tables)


def remembered_read(rule: str, endpoint: str, *, scopes: tuple[str, ...],
                    roles: frozenset[str] | None, tables: tuple[str, ...], remember: Any) -> None:
    """A read the route answers and the lane remembers (``remembered.remembered_route``)."""
    pattern, uuids = _pattern(rule)
    _ROUTES[rule] = LaneRoute(rule, tuple(scopes), roles, _route_answers, frozenset(),
                              pattern, uuids, tables, endpoint, remember)


def _route_answers(_request: LaneRequest) -> None:
    return None  # a remembered read is the route's to answer


def _tables_of(statement: Callable[..., Any], path: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The tables a read's statement selects from (any caller: the same for every one),
    each watched for changes from now on."""
    probe = Principal("user", uuid.uuid4(), uuid.uuid4(), "USER", frozenset())
    stmt = statement(_placeholder(probe), **dict.fromkeys(path))
    if not all(isinstance(f, Table) for f in stmt.get_final_froms()):
        raise NotPreparable("a lane read selects from plain tables (no joins, no eager loads)")
    tables = tuple(sorted({t.name for t in stmt.get_final_froms()}))
    for table in stmt.get_final_froms():
        freshness.watch(table)
    return tables


def _remembered(rule: str, key: tuple, request: LaneRequest,
                read: Callable[[], Any]) -> Any:
    """The answer remembered under the request's counters, or ``read()`` remembered."""
    if not freshness.has_epoch(request.counters):
        return read()
    answers = freshness.answers_of(rule)
    answer = answers.get(key, request.counters)
    if answer is None:
        answer = read()
        if answer is not None:
            answers.put(key, request.counters, answer)
    return answer


def match(path: str) -> tuple[LaneRoute, dict[str, Any]] | None:
    route = _ROUTES.get(path)
    if route is not None and not route.uuids and "<" not in route.rule:
        return route, {}
    for route in _ROUTES.values():
        found = route.pattern.match(path)
        if found is not None:
            args: dict[str, Any] = found.groupdict()
            for name in route.uuids:
                args[name] = uuid.UUID(args[name])
            return route, args
    return None


def _placeholder(principal: Principal) -> Principal:
    """The caller with its ids as bound parameters: the feature's statement is compiled once
    per kind of caller (role, scopes, key or not) and run with each caller's ids."""
    return dataclasses.replace(
        principal, user_id=bindparam("lane_user", type_=Uuid),
        api_key_id=bindparam("lane_api_key", type_=Uuid) if principal.api_key_id else None)


def _variant(principal: Principal) -> tuple:
    return (principal.kind, principal.role, principal.scopes, principal.api_key_id is not None)


def _ids(principal: Principal) -> dict[str, Any]:
    return {"lane_user": principal.user_id, "lane_api_key": principal.api_key_id}


def page_route(rule: str, *, statement: Callable[..., Any], order_by: tuple[Any, Any],
               schema: type[Schema], scopes: tuple[str, ...] = (),
               roles: tuple[str, ...] | None = None, uuid_filters: tuple[str, ...] = (),
               choice_filters: dict[str, tuple[str, ...]] | None = None) -> None:
    """A cursor page, as ``paginate(statement(principal, **filters), cursor, limit,
    order_by)`` and ``page_of(schema)`` answer it. Filters are optional query parameters
    handed to ``statement`` by name, None when absent: ``uuid_filters`` as bound UUIDs,
    ``choice_filters`` (name: the values the route accepts) as the value itself."""
    from app.api.pagination import DEFAULT_LIMIT, decode_cursor, encode_cursor
    from app.errors import ApiError

    choices = dict(choice_filters or {})
    created_col, id_col = order_by
    item_schema = schema()
    reads: dict[tuple, PreparedRead] = {}

    def read_for(principal: Principal, after: bool, filters: dict[str, Any]) -> PreparedRead:
        present = tuple(sorted(name for name, value in filters.items()
                               if value is not None and name in uuid_filters))
        chosen = tuple(sorted((name, filters[name]) for name in choices))
        key = (_variant(principal), after, present, chosen)
        read = reads.get(key)
        if read is None:
            position = (bindparam("lane_after_at", type_=created_col.type),
                        bindparam("lane_after_id", type_=id_col.type)) if after else None
            placeholders: dict[str, Any] = {
                name: bindparam(f"lane_filter_{name}", type_=Uuid) if name in present else None
                for name in uuid_filters}
            placeholders.update(chosen)
            read = reads[key] = PreparedRead(page_statement(
                statement(_placeholder(principal), **placeholders), order_by, after=position,
                fetch=bindparam("lane_fetch", type_=Integer)))
        return read

    def answer(request: LaneRequest) -> Any:
        limit_text = request.query.get("limit")
        if limit_text is None:
            limit = DEFAULT_LIMIT
        elif _LIMIT.match(limit_text) and 1 <= int(limit_text) <= MAX_LIMIT:
            limit = int(limit_text)
        else:
            return None  # the route's 422
        cursor = request.query.get("cursor")
        params = _ids(request.principal)
        filters: dict[str, Any] = dict.fromkeys((*uuid_filters, *choices))
        for name in uuid_filters:
            text = request.query.get(name)
            if text is not None:
                if not _UUID_TEXT.match(text):
                    return None  # the route's 422
                filters[name] = params[f"lane_filter_{name}"] = uuid.UUID(text)
        for name, accepted in choices.items():
            text = request.query.get(name)
            if text is not None and text not in accepted:
                return None  # the route's 422
            filters[name] = text
        if cursor:
            try:
                params["lane_after_at"], params["lane_after_id"] = decode_cursor(cursor)
            except ApiError:
                return None  # the route's 400

        def read() -> Any:
            prepared = read_for(request.principal, bool(cursor), filters)
            rows = prepared.fetch(request.engine, request.tenant.id, lane_fetch=limit + 1,
                                  **params)
            next_cursor = None
            if len(rows) > limit:
                rows = rows[:limit]
                last = prepared.values(rows[-1], request.engine.dialect)
                next_cursor = encode_cursor(last[created_col.key], last[id_col.key])
            dump = prepared.dumper(item_schema, request.engine.dialect).dump
            return {"items": [dump(row) for row in rows], "next_cursor": next_cursor}

        key = (request.tenant.id, _variant(request.principal), request.principal.user_id,
               request.principal.api_key_id, limit, cursor or None,
               tuple(filters.values()))
        return _remembered(rule, key, request, read)

    answer_route(rule, answer, scopes=scopes, roles=roles,
                 query=("cursor", "limit", *uuid_filters, *choices),
                 tables=_tables_of(statement, (*uuid_filters, *choices)))


def item_route(rule: str, *, statement: Callable[..., Any], schema: type[Schema],
               scopes: tuple[str, ...] = (), roles: tuple[str, ...] | None = None) -> None:
    """One object, as the route's ``statement(principal, **path).first()`` and ``schema``
    answer it; no row is the route's own 404."""
    item_schema = schema()
    pattern, uuids = _pattern(rule)
    names = list(pattern.groupindex)
    reads: dict[tuple, PreparedRead] = {}

    def answer(request: LaneRequest) -> Any:
        def read() -> Any:
            key = _variant(request.principal)
            prepared = reads.get(key)
            if prepared is None:
                path = {name: bindparam(f"lane_path_{name}",
                                        type_=Uuid if name in uuids else None)
                        for name in names}
                prepared = reads[key] = PreparedRead(
                    statement(_placeholder(request.principal), **path))
            params = {f"lane_path_{name}": value for name, value in request.path.items()}
            rows = prepared.fetch(request.engine, request.tenant.id,
                                  **_ids(request.principal), **params)
            if not rows:
                return None
            return prepared.dumper(item_schema, request.engine.dialect).dump(rows[0])

        key = (request.tenant.id, _variant(request.principal), request.principal.user_id,
               request.principal.api_key_id, tuple(sorted(request.path.items())))
        return _remembered(rule, key, request, read)

    answer_route(rule, answer, scopes=scopes, roles=roles, tables=_tables_of(statement, names))
