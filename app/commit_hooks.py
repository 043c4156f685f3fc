"""Acting on rows once their change is committed: note them at flush, act after the commit.

Caches kept per process (licensing snapshots, price books) are told about a change only once
it is committed, whatever code path wrote the rows: a rolled-back change tells nobody.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

_installed: set[str] = set()


def _pending(name: str) -> str:
    return f"albedo_commit_hooks:{name}"


def note(session: Session, name: str, found: set) -> None:
    """Add ``found`` to what ``name``'s hook acts on after this session's commit (for changes
    a flush does not show, such as bulk UPDATE and DELETE statements)."""
    if found:
        session.info.setdefault(_pending(name), set()).update(found)


def on_commit(name: str, changed: Callable[[Session], set],
              act: Callable[[set], None],
              bulk: Callable[[ORMExecuteState], set] | None = None) -> None:
    """After every flush, ``changed(session)`` names what the flush changed; with ``bulk``,
    every ORM-executed statement too (``bulk(state)``: a bulk UPDATE or DELETE shows no
    objects to a flush); after the commit, ``act`` gets all of it (in an app context).
    Installed once per ``name``."""
    if name in _installed:
        return
    pending = _pending(name)

    if bulk is not None:
        @event.listens_for(Session, "do_orm_execute")
        def _note_bulk(state):
            note(state.session, name, bulk(state))

    @event.listens_for(Session, "after_flush")
    def _note(session, flush_context):
        note(session, name, changed(session))

    @event.listens_for(Session, "after_commit")
    def _act(session):
        found = session.info.pop(pending, None)
        if found and has_app_context() and "albedo.settings" in current_app.extensions:
            act(found)

    @event.listens_for(Session, "after_rollback")
    def _discard(session):
        session.info.pop(pending, None)

    _installed.add(name)
