"""Idempotency-Key, the one rule for every POST that takes the header.

* The same key with the same request answers with what the first request created (the same
  execution, the same bulk issue), however often it is sent, for 24 hours.
* The same key with a different request is a client bug (a reused key): 422
  ``idempotency_key_reused``, and nothing is created.
* After 24 hours the key is forgotten: the recovery sweep clears it, and a request that finds
  an older one treats it as unused.

A key belongs to one caller (user) within one tenant. What counts as "the same request" is a
SHA-256 over the parts of the request that decide what is created (the endpoint's target and
its body), in canonical JSON.

One mechanism declares and reads the header: :func:`honours` on a POST handler. It adds the
header to the operation in the OpenAPI document (type, length, the rule above) and hands the
handler its value as the ``idempotency_key`` argument; nothing else reads the header, so the
document and the behaviour cannot drift apart (tests/test_api_idempotency.py checks both
ways, and replays every declaring operation).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import select, update

from app import clock
from app.errors import ApiError
from app.extensions import db

HEADER = "Idempotency-Key"
KEPT = timedelta(hours=24)
MAX_LENGTH = 255
DESCRIPTION = (
    "Makes a retried request safe. The same key with the same request answers with what the "
    "first one created, however often it is sent; the same key with a different request "
    "answers 422 `idempotency_key_reused` and creates nothing. Keys belong to the caller and "
    f"are kept 24 hours. 1 to {MAX_LENGTH} characters.")
# Marks a handler declared by honours(): the test compares these with the document.
MARK = "honours_idempotency_key"


class IdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # every other header

    # No load_default: a default of None would declare the header nullable; the handler's
    # own default (None) stands in for a request without it.
    idempotency_key = fields.String(data_key=HEADER, validate=validate.Length(1, MAX_LENGTH),
                                    metadata={"description": DESCRIPTION})


def honours(blp: Blueprint) -> Callable[[Callable], Callable]:
    """Decorator for a POST handler that honours Idempotency-Key: declares the header in the
    OpenAPI document and passes its value as ``idempotency_key`` (absent: the handler's default,
    ``idempotency_key=None``)."""
    declare = blp.arguments(IdempotencyHeaderSchema, location="headers", as_kwargs=True)

    def decorate(view: Callable) -> Callable:
        wrapped = declare(view)
        setattr(wrapped, MARK, True)
        return wrapped

    return decorate


def find(model: Any, owner: Any, key: str, fingerprint: str, now: datetime | None = None
         ) -> Any | None:
    """The row ``key`` made for this caller within 24 hours; 422 if it was for another request.

    ``model`` has ``idempotency_key``, ``idempotency_fingerprint`` and ``created_at``;
    ``owner`` is the condition naming the caller (e.g. ``Execution.caller_user_id == …``).
    An older row gives its key up (the sweep clears the rest: :func:`forget_expired`).
    """
    existing = db.session.scalars(select(model).where(owner, model.idempotency_key == key)
                                  ).first()
    if existing is None:
        return None
    if is_expired(existing.created_at, now or clock.now()):
        db.session.execute(update(model).where(model.id == existing.id)
                           .values(idempotency_key=None)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        return None
    ensure_same(existing.idempotency_fingerprint, fingerprint)
    return existing


def forget_expired(model: Any, now: datetime) -> int:
    """Clear the keys older than 24 hours in every tenant (the recovery sweep); how many."""
    return db.session.execute(
        update(model).where(model.idempotency_key.is_not(None), model.created_at < now - KEPT)
        .values(idempotency_key=None)
        .execution_options(synchronize_session=False,
                           cross_tenant="Idempotency-Keys are kept 24 hours in every tenant")
    ).rowcount


def checked(key: str | None) -> str | None:
    """The key, or None without one; a key that is too long is refused (422)."""
    if not key:
        return None
    if len(key) > MAX_LENGTH:
        raise ApiError(422, "invalid_idempotency_key",
                       f"Idempotency-Key is at most {MAX_LENGTH} characters.")
    return key


def fingerprint(*parts: Any) -> str:
    """The request's identity: SHA-256 over its deciding parts in canonical JSON."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_expired(created_at: datetime, now: datetime) -> bool:
    return created_at < now - KEPT


def ensure_same(stored: str | None, current: str) -> None:
    """Refuse a key that was used with another request (rows from before fingerprints were
    stored have none, and are taken as the same)."""
    if stored is not None and stored != current:
        raise ApiError(422, "idempotency_key_reused",
                       "This Idempotency-Key was used with a different request; use a new "
                       "key for a new request.", {"header": HEADER})
