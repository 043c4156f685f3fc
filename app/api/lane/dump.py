"""A response schema's answer made straight from the driver's row.

The schema stays the definition of the answer: :class:`RowDump` reads it once and plans,
for each of its fields, how the value the driver returns becomes the value the schema's dump
would have written — without the Python object in between where that object would only be
turned back into text (a UUID read from SQLite's hex is parsed, then printed again; a
datetime parsed by a regular expression, then formatted). Where a field or column is not one
of the plain kinds below, the plan does exactly what an ORM load and the schema do: the
column type's result processor, then the field's own ``_serialize``.

``tests/test_read_lane.py`` compares every lane route's answers with the Flask route's,
field for field, on two tenants and every kind of caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields, missing
from sqlalchemy import Boolean, Enum, Integer, String, Text, Uuid
from sqlalchemy.engine import Dialect

from app.models import UTCDateTime

Convert = Callable[[Any], Any]


def _uuid_text(raw: Any) -> str | None:
    if raw is None:
        return None
    if type(raw) is str and len(raw) == 32:  # SQLite: the hex SQLAlchemy stored
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}".lower()
    return str(raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw)))


def _iso_datetime(raw: Any) -> str | None:
    if raw is None:
        return None
    if type(raw) is str and len(raw) == 26 and raw[10] == " " and raw[19] == ".":
        # SQLite: SQLAlchemy's storage format, always with six fractional digits, of a UTC
        # time; isoformat() leaves the fraction out when it is zero.
        if raw.endswith(".000000"):
            return f"{raw[:10]}T{raw[11:19]}+00:00"
        return f"{raw[:10]}T{raw[11:]}+00:00"
    value = datetime.fromisoformat(raw) if type(raw) is str else raw
    if value.tzinfo is None:  # SQLite hands them back naive; they were stored as UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _bool(raw: Any) -> bool | None:
    return None if raw is None else bool(raw)


def _as_is(raw: Any) -> Any:
    return raw


_AS_IS = _as_is  # marks a column printed as the driver returns it (no call per value)


def _plain_converter(field: fields.Field, column_type: Any) -> Convert | None:
    """A direct conversion when the field would print the column's value unchanged."""
    field_cls = type(field)
    if field.dump_default is not missing or (type(field).serialize is not fields.Field.serialize):
        return None
    if field_cls is fields.UUID and isinstance(column_type, Uuid):
        return _uuid_text
    if (field_cls is fields.DateTime and field.format in (None, "iso")
            and isinstance(column_type, UTCDateTime)):
        return _iso_datetime
    if field_cls is fields.Boolean and isinstance(column_type, Boolean):
        return _bool
    if (field_cls is fields.String and isinstance(column_type, String | Text)
            and not isinstance(column_type, Enum)):
        return _AS_IS
    if field_cls is fields.Integer and not field.as_string and isinstance(column_type, Integer):
        return _AS_IS
    return None


def _faithful(field: fields.Field, name: str, column_type: Any, dialect: Dialect) -> Convert:
    """What an ORM load and the schema's dump do: the type's processor, then the field."""
    processor = column_type.dialect_impl(dialect).result_processor(dialect, None)

    def convert(raw: Any) -> Any:
        value = processor(raw) if processor is not None else raw
        return None if value is None else field._serialize(value, name, None)
    return convert


class NotDumpable(ValueError):
    """A field reads something that is not one of the row's columns."""


class RowDump:
    """``dump(row)``: the schema's answer for one driver row (a tuple in ``keys`` order)."""

    def __init__(self, schema: Schema, keys: list[str], column_types: list[Any],
                 dialect: Dialect):
        index = {key: i for i, key in enumerate(keys)}
        plan: list[tuple[str, int, Convert | None]] = []
        for name, field in schema.dump_fields.items():
            attribute = field.attribute or name
            if attribute not in index or "." in attribute:
                raise NotDumpable(f"{type(schema).__name__}.{name} reads {attribute!r}")
            at = index[attribute]
            column_type = column_types[at]
            convert = _plain_converter(field, column_type) or _faithful(
                field, name, column_type, dialect)
            plan.append((field.data_key or name, at, None if convert is _AS_IS else convert))
        self.dump = _compile(plan)


def _compile(plan: list[tuple[str, int, Convert | None]]) -> Callable[[tuple], dict]:
    """One function per plan, its dict written out (a loop over the plan per row was half
    of a page's dump): ``{"id": c0(row[7]), "name": row[2], ...}``."""
    namespace: dict[str, Any] = {}
    items = []
    for n, (out, at, convert) in enumerate(plan):
        if convert is None:
            items.append(f"{out!r}: row[{at}]")
        else:
            namespace[f"c{n}"] = convert
            items.append(f"{out!r}: c{n}(row[{at}])")
    source = "def dump(row):\n    return {" + ", ".join(items) + "}\n"
    exec(compile(source, "<lane row dump>", "exec"), namespace)  # noqa: S102  (our own text)
    return namespace["dump"]
