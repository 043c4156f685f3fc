"""Read statements compiled once and run on the driver's cursor, the tenant written in.

The ORM spends most of a scoped read on work that is the same every time: building the
select, generating its cache key, the guard's criterion, the execution context, and loading
rows into identity-mapped objects. A :class:`PreparedRead` takes a statement built by the
feature's own query function (with ``bindparam`` placeholders where the request's values
go), adds ``tenant_id = :lane_tenant`` for every tenant-scoped table it reads from, compiles
it once per dialect, and then only binds, executes and converts the columns with the types'
own processors — the same conversions SQLAlchemy applies, asked of the same types.

Isolation does not rest on the guard here: the tenant criterion is in the SQL itself, and on
PostgreSQL the transaction also gets ``app.tenant_id`` for row-level security first, as the
ORM session does (``tenants/isolation.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from marshmallow import Schema
from sqlalchemy import Table, Uuid, bindparam, inspect
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql import Select

from app.api.lane.dump import RowDump

TENANT_PARAM = "lane_tenant"
_SET_RLS = ("SELECT set_config('app.tenant_id', {p}, true), "
            "set_config('app.cross_tenant', 'off', true)")


class NotPreparable(ValueError):
    """The statement cannot run this way (a join, an expanding parameter, a subquery)."""


class _Compiled:
    __slots__ = (
        "binders",
        "converters",
        "fixed",
        "keys",
        "order",
        "positional",
        "rls_sql",
        "sql",
    )

    def __init__(self, stmt: Select, dialect: Dialect, keys: list[str]):
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        if "POSTCOMPILE" in self.sql:
            raise NotPreparable("a parameter is rendered at execution (IN list or literal)")
        self.positional = bool(compiled.positional)
        binds = compiled.binds
        self.order = list(compiled.positiontup or binds.keys())
        self.binders: dict[str, Callable | None] = {
            name: binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.order}
        # Values the statement carries itself (a literal compared with, say).
        self.fixed = {name: binds[name].effective_value for name in self.order
                      if not binds[name].required and binds[name].callable is None
                      and binds[name].value is not None}
        self.keys = keys
        self.converters = [col.type.dialect_impl(dialect).result_processor(dialect, None)
                           for col in stmt.selected_columns]
        placeholder = "?" if dialect.paramstyle == "qmark" else (
            "%s" if dialect.paramstyle in ("format", "pyformat") else ":lane_tenant")
        self.rls_sql = _SET_RLS.format(p=placeholder) if dialect.name == "postgresql" else None


class PreparedRead:
    """One read, compiled once per dialect; ``fetch(engine, tenant_id, **params)``."""

    def __init__(self, stmt: Select):
        froms = stmt.get_final_froms()
        if not froms or not all(isinstance(f, Table) for f in froms):
            raise NotPreparable("only plain tables (no joins or subqueries)")
        for table in froms:
            if "tenant_id" in table.c:
                stmt = stmt.where(table.c.tenant_id == bindparam(TENANT_PARAM, type_=Uuid))
        if not any("tenant_id" in t.c for t in froms):
            raise NotPreparable("a lane read is a tenant's read")
        self.stmt = stmt
        self.keys = [_attribute_key(col) for col in stmt.selected_columns]
        self._by_dialect: dict[str, _Compiled] = {}
        self._dumpers: dict[tuple[type, str], RowDump] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _Compiled(self.stmt, dialect, self.keys)
        return compiled

    def fetch(self, engine: Engine, tenant_id: uuid.UUID, **params: Any) -> list[tuple]:
        """The driver's rows, unconverted (``dumper`` turns them into answers)."""
        compiled = self._compiled(engine.dialect)
        params = {**compiled.fixed, **params, TENANT_PARAM: tenant_id}
        values = []
        for name in compiled.order:
            value = params[name]
            binder = compiled.binders[name]
            values.append(binder(value) if binder is not None else value)
        bound = values if compiled.positional else dict(zip(compiled.order, values, strict=True))
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                if compiled.rls_sql is not None:
                    cursor.execute(compiled.rls_sql, (str(tenant_id),))
                cursor.execute(compiled.sql, bound)
                return cursor.fetchall()
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool, which rolls the read's transaction back

    def values(self, raw: tuple, dialect: Dialect) -> dict[str, Any]:
        """One fetched row as a dict keyed by the model's attribute names, converted by the
        columns' types exactly as an ORM load would."""
        converters = self._compiled(dialect).converters
        return {key: (conv(value) if conv is not None else value)
                for key, conv, value in zip(self.keys, converters, raw, strict=True)}

    def dumper(self, schema: Schema, dialect: Dialect) -> RowDump:
        """``schema``'s answer for one of this read's rows (made once per schema and dialect)."""
        key = (type(schema), dialect.name)
        dump = self._dumpers.get(key)
        if dump is None:
            dump = self._dumpers[key] = RowDump(
                schema, self.keys, [c.type for c in self.stmt.selected_columns], dialect)
        return dump


def _attribute_key(column: Any) -> str:
    """The mapped attribute a selected column loads into (what the schemas read)."""
    entity = column._annotations.get("parententity") if hasattr(column, "_annotations") else None
    if entity is not None:
        return inspect(entity).get_property_by_column(column).key
    return column.key
