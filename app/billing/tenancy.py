"""Acting for another tenant in the middle of a transaction.

A webhook arrives on the platform's host and its effects belong to a reseller (and a
reseller's receipt is sent as the platform). PostgreSQL learns the tenant from the ORM
statements the session executes; a flush alone does not tell it. So the switch flushes what
the previous tenant wrote, and runs one statement to hand the new tenant to row-level
security before anything is written for it, and again on the way back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import literal, select

from app.extensions import db
from tenants.context import TenantInfo, activate


def _sync() -> None:
    db.session.execute(select(literal(1)))


@contextmanager
def acting_for(tenant: TenantInfo) -> Iterator[TenantInfo]:
    db.session.flush()
    try:
        with activate(tenant):
            _sync()
            yield tenant
            db.session.flush()
    finally:
        _sync()
