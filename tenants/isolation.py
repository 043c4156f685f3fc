"""Row-level isolation, layer one: the ORM guard.

Every model that holds a tenant's data mixes in :class:`TenantScoped`. The guard then:

* adds ``tenant_id = <current tenant>`` to every ORM SELECT, UPDATE and DELETE that touches a
  tenant-scoped entity (``with_loader_criteria``, so joins, relationship loads and bulk
  statements are covered too);
* raises :class:`NoTenantError` when such a statement runs with no tenant in context (fail
  closed), unless the statement opts in with ``execution_options(cross_tenant="why")`` or
  runs inside ``tenants.cross_tenant("why")``;
* stamps ``tenant_id`` on new rows in ``before_flush``, refuses rows of another tenant, and
  refuses any change of ``tenant_id``.

Layer two is the database itself: on PostgreSQL the same tenant id is handed to row-level
security policies with ``set_config('app.tenant_id', …, true)`` at the start of every
transaction (``true``: transaction-local, so a pooled connection never carries it on).
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import ForeignKey, Uuid, event, inspect, text
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)

from tenants.context import NoTenantError, cross_tenant_reason, current_id

log = logging.getLogger(__name__)

CROSS_TENANT_OPTION = "cross_tenant"
_RLS_STATE = "albedo_rls_state"
_SET_RLS = text("SELECT set_config('app.tenant_id', :tenant, true), "
                "set_config('app.cross_tenant', :cross, true)")


class CrossTenantWriteError(RuntimeError):
    """A row of one tenant was about to be written while acting for another."""


class TenantIdImmutableError(RuntimeError):
    """tenant_id never changes after a row is created."""


class TenantScoped:
    """Mixin for every model holding one tenant's data."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(Uuid, ForeignKey("tenants.id", ondelete="CASCADE"),
                             nullable=False, index=True)


def _is_scoped(mapper) -> bool:
    return issubclass(mapper.class_, TenantScoped)


def _statement_reason(state: ORMExecuteState) -> str | None:
    reason = state.execution_options.get(CROSS_TENANT_OPTION)
    if reason is not None and not (isinstance(reason, str) and reason.strip()):
        raise ValueError("cross_tenant execution option must be a non-empty reason")
    return reason


def _rls_values(cross: bool) -> tuple[str, str]:
    tenant_id = current_id()
    return (str(tenant_id) if tenant_id else "", "on" if cross else "off")


def _sync_rls(session: Session, connection, cross: bool) -> None:
    """Hand the tenant to PostgreSQL's policies when it differs from what was last set."""
    if connection.dialect.name != "postgresql":
        return
    values = _rls_values(cross)
    if session.info.get(_RLS_STATE) != values:
        connection.execute(_SET_RLS, {"tenant": values[0], "cross": values[1]})
        session.info[_RLS_STATE] = values


def _after_begin(session: Session, transaction, connection) -> None:
    session.info.pop(_RLS_STATE, None)  # a new transaction starts with nothing set
    _sync_rls(session, connection, cross=cross_tenant_reason() is not None)


def _after_end(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_RLS_STATE, None)


def _do_orm_execute(state: ORMExecuteState):
    statement_reason = _statement_reason(state)
    reason = statement_reason or cross_tenant_reason()
    session = state.session
    # session.connection() begins the transaction if needed (after_begin sets the tenant);
    # then the statement's own opt-in, if any, is applied on top.
    _sync_rls(session, session.connection(), cross=reason is not None)
    if not (state.is_select or state.is_update or state.is_delete):
        return None
    if reason is not None:
        log.debug("cross-tenant statement (%s)", reason)
        if statement_reason is not None and cross_tenant_reason() is None:
            # Opt-in for this one statement: run it (buffering any rows), then close the door.
            result = state.invoke_statement()
            if state.is_select:
                result = result.freeze()()
            _sync_rls(session, session.connection(), cross=False)
            return result
        return None
    tenant_id = current_id()
    if tenant_id is None and any(_is_scoped(m) for m in state.all_mappers):
        raise NoTenantError(
            "tenant-scoped query with no tenant in context; act inside a tenant "
            "(tenants.activate) or opt in with cross_tenant='reason'")
    # Always added, even when no scoped mapper was spotted at the top level: with no tenant
    # the criterion is "tenant_id IS NULL", which matches nothing (the column is NOT NULL).
    state.statement = state.statement.options(_tenant_criterion(tenant_id))
    return None


_CRITERIA: dict[uuid.UUID | None, object] = {}
_CRITERIA_KEPT = 1024


def _tenant_criterion(tenant_id: uuid.UUID | None):
    """The guard's loader criterion for ``tenant_id``, made once per tenant and process.

    Building it (a lambda element analysed against its closure) for every statement showed
    in profiles of scoped reads; the option is immutable, so one per tenant serves them all.
    Every tenant's option has the same lambda code, so statements still share one compiled
    form in SQLAlchemy's cache, the tenant id being a bound parameter.
    """
    option = _CRITERIA.get(tenant_id)
    if option is None:
        if len(_CRITERIA) >= _CRITERIA_KEPT:
            _CRITERIA.clear()
        option = _CRITERIA[tenant_id] = with_loader_criteria(
            TenantScoped, lambda cls: cls.tenant_id == tenant_id, include_aliases=True)
    return option


def _before_flush(session: Session, flush_context, instances) -> None:
    tenant_id = current_id()
    cross = cross_tenant_reason() is not None
    # A flush's INSERTs and UPDATEs bypass do_orm_execute: hand PostgreSQL the tenant here
    # too, or a transaction begun under one tenant would write with its setting.
    _sync_rls(session, session.connection(), cross=cross)
    for obj in session.new:
        if not isinstance(obj, TenantScoped):
            continue
        if obj.tenant_id is None:
            if tenant_id is None:
                raise NoTenantError(f"cannot create {type(obj).__name__} with no tenant")
            obj.tenant_id = tenant_id
        elif obj.tenant_id != tenant_id and not cross:
            raise CrossTenantWriteError(
                f"refusing to create {type(obj).__name__} for another tenant")
    for obj in list(session.dirty) + list(session.deleted):
        if not isinstance(obj, TenantScoped):
            continue
        history = inspect(obj).attrs.tenant_id.history
        if history.deleted and history.deleted[0] is not None and history.has_changes():
            raise TenantIdImmutableError(f"tenant_id of {type(obj).__name__} cannot change")
        if obj.tenant_id != tenant_id and not cross:
            raise CrossTenantWriteError(
                f"refusing to change {type(obj).__name__} of another tenant")


_installed = False


def install_isolation() -> None:
    """Attach the guard to every SQLAlchemy Session (idempotent; called by create_app)."""
    global _installed
    if _installed:
        return
    event.listen(Session, "do_orm_execute", _do_orm_execute)
    event.listen(Session, "before_flush", _before_flush)
    event.listen(Session, "after_begin", _after_begin)
    event.listen(Session, "after_transaction_end", _after_end)
    _installed = True
