"""Cursor pagination for every list endpoint.

Keyset on (created_at, id), newest first: stable under inserts, no OFFSET scans. The cursor is
opaque and signed (itsdangerous, with the app's secret), so a client can neither forge a
position nor carry a cursor from one tenant to another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from marshmallow import Schema, fields, validate
from sqlalchemy import and_, or_

from app.api.serialization import FastDumpSchema
from app.errors import ApiError
from app.extensions import db
from tenants.context import current

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


class CursorArgsSchema(Schema):
    cursor = fields.String(load_default=None, metadata={
        "description": "Opaque cursor from a previous page's next_cursor."})
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(1, MAX_LIMIT),
                           metadata={"description": f"Items per page, at most {MAX_LIMIT}."})


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


def _serializer() -> URLSafeSerializer:
    # One per app: building it (signer, JSON module, salts) for every page showed in profiles.
    serializer = current_app.extensions.get("albedo.cursor_serializer")
    if serializer is None:
        serializer = URLSafeSerializer(current_app.config["SECRET_KEY"], salt="albedo-cursor-v1")
        current_app.extensions["albedo.cursor_serializer"] = serializer
    return serializer


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    return _serializer().dumps([str(current().id), created_at.isoformat(), str(row_id)])


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        tenant_id, created_at, row_id = _serializer().loads(cursor)
        if tenant_id != str(current().id):
            raise BadSignature("cursor of another tenant")
        return datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except (BadSignature, ValueError, TypeError):
        raise ApiError(400, "invalid_cursor", "The cursor is invalid; start again without "
                                              "one.") from None


def page_statement(stmt, order_by, *, after: tuple[Any, Any] | None, fetch: Any):
    """``stmt`` newest first from after the position ``after`` (created_at, id), ``fetch``
    rows: a page and one more, to tell whether there is a next page. The values may be
    ``bindparam`` placeholders (the read lane compiles this once, app/api/lane)."""
    created_col, id_col = order_by
    if after is not None:
        created_at, row_id = after
        stmt = stmt.where(or_(created_col < created_at,
                              and_(created_col == created_at, id_col < row_id)))
    return stmt.order_by(created_col.desc(), id_col.desc()).limit(fetch)


def paginate(stmt, *, cursor: str | None, limit: int, order_by) -> Page:
    created_col, id_col = order_by
    limit = max(1, min(limit, MAX_LIMIT))
    after = decode_cursor(cursor) if cursor else None
    rows = list(db.session.scalars(page_statement(stmt, order_by, after=after,
                                                  fetch=limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, created_col.key), getattr(last, id_col.key))
    return Page(rows, next_cursor)


_PAGE_SCHEMAS: dict[type, type] = {}


def page_of(item_schema: type[Schema]) -> type[Schema]:
    """The response schema ``{items: [item], next_cursor}`` for ``item_schema``."""
    if item_schema not in _PAGE_SCHEMAS:
        name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
        _PAGE_SCHEMAS[item_schema] = type(name, (FastDumpSchema,), {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "next_cursor": fields.String(allow_none=True, metadata={
                "description": "Pass as ?cursor= for the next page; null on the last page."}),
        })
    return _PAGE_SCHEMAS[item_schema]
