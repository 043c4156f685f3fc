"""Price books and plan allowances kept per process (app/billing/book_cache.py).

Two apps stand for two processes: they share the database and Redis, not their caches.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from sqlalchemy import event

from app import clock
from app.billing import book_cache, ledger, price_book
from app.extensions import db
from tenants.context import activate
from tests.agents_support import fake, make_agents_app  # noqa: F401  (fixtures)
from tests.rebilling_support import set_book


def _execution(user_id) -> SimpleNamespace:
    return SimpleNamespace(
        id=uuid.uuid4(), caller_user_id=user_id, prompt_tokens=10, completion_tokens=10,
        cost_micros=300, agent_id=uuid.uuid4(), model="gpt-4o-mini", version_number=1,
        finished_at=clock.now(), source="api", license_id=None, api_key_id=None,
        started_at=clock.now())


def _charge(application, site, user_id) -> tuple[int, list[str]]:
    """Record one charge; (its retail price in minor units, the price tables it read)."""
    read: list[str] = []

    def statement(conn, cursor, text, params, context, executemany):
        if text.lstrip().upper().startswith("SELECT") and (
                "billing_price" in text or "billing_plan_usage" in text):
            read.append(" ".join(text.split())[:80])

    with application.app_context(), activate(site.info):
        event.listen(db.engine, "before_cursor_execute", statement)
        try:
            entry = ledger.record(_execution(user_id), "succeeded")
            db.session.commit()
            return entry.retail_micro // 1_000_000, read
        finally:
            event.remove(db.engine, "before_cursor_execute", statement)


def test_books_are_read_once_and_a_change_anywhere_is_seen(make_agents_app, acme, globex,
                                                           make_user):
    one, other = make_agents_app(), make_agents_app()  # two processes
    ann, bob = make_user(acme, "ann@example.com"), make_user(globex, "ann@example.com")
    set_book(one, acme, kind="execution", per_execution_minor=7)
    set_book(one, globex, kind="execution", per_execution_minor=9)

    assert _charge(one, acme, ann)[0] == 7
    assert _charge(one, acme, ann) == (7, [])  # from the cache: no price table read
    assert _charge(one, globex, bob)[0] == 9  # each tenant its own book

    # Another process changes acme's price: this one sees it once it checks the counter
    # (at most CHECK_EVERY later), never the other tenant's book changed.
    with other.app_context(), activate(acme.info):
        price_book.set_price(kind="execution", per_execution_minor=11)
        db.session.commit()
    cache = book_cache.of_app(one)
    assert _charge(one, acme, ann) == (7, [])  # within the second: the old price
    moved = cache.monotonic() + book_cache.CHECK_EVERY
    cache.monotonic = lambda: moved
    price, read = _charge(one, acme, ann)
    assert price == 11 and read
    assert _charge(one, globex, bob) == (9, [])

    # The process that makes a change sees it at once.
    with one.app_context(), activate(globex.info):
        price_book.set_price(kind="execution", per_execution_minor=13)
        db.session.commit()
    assert _charge(one, globex, bob)[0] == 13


def test_without_redis_every_charge_reads_the_books(make_agents_app, acme, make_user,
                                                    monkeypatch):
    application = make_agents_app()
    ann = make_user(acme, "ann@example.com")
    set_book(application, acme, kind="execution", per_execution_minor=7)

    class Down:
        def get(self, *_):
            raise ConnectionError("Redis is down")

    monkeypatch.setattr("app.redis.get_redis", lambda: Down())
    for _ in range(2):
        price, read = _charge(application, acme, ann)
        assert price == 7 and read
