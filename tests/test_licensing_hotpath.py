"""The validation hot path: cached snapshots that every process sees go stale, a ledger that
decides warm validations without Redis within a sync window (one round trip when it asks,
none and no query otherwise), and answers even without Redis."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from tests.licensing_support import VALIDATE, make_license


def _another_process(migrated, **overrides):
    """Another app over the same database and Redis: its own snapshot cache and ledger, as
    another gunicorn worker would have."""
    from app import create_app

    return create_app(migrated.with_overrides(**overrides))


def _dispose(other) -> None:
    from app.extensions import db
    from tests.conftest import close_ledger

    close_ledger(other)
    with other.app_context():
        db.session.remove()


@pytest.fixture
def second_process(app, migrated):
    other = _another_process(migrated)
    yield other
    _dispose(other)


@pytest.fixture
def exact_process(app, migrated):
    """A process that asks Redis at every validation (ALBEDO_LICENSE_SYNC_SECONDS=0)."""
    other = _another_process(migrated, license_sync_seconds=0)
    yield other
    _dispose(other)


@pytest.fixture
def round_trips(monkeypatch) -> list[bytes]:
    """Every request this thread sends to Redis (a pipeline is one), by its first bytes; the
    ledger's flusher thread is not counted."""
    import threading

    from redis.connection import AbstractConnection

    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command
    me = threading.current_thread()

    def counting(self, command, check_health=True):
        if threading.current_thread() is me:
            first = command[0] if isinstance(command, list | tuple) else command
            sent.append(bytes(first)[:60])
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


def _ledger(app):
    from app.licensing import ledger

    with app.app_context():
        return ledger.of_app()


def _freeze(app):
    """Stop the app's ledger clock (a slow machine must not cross a window by itself);
    returns a function that moves it past one sync window."""
    book = _ledger(app)
    now = [book.monotonic()]
    book.monotonic = lambda: now[0]

    def cross_window() -> None:
        now[0] += book.window + 0.001

    return cross_window


def _validate(app, site, key: str, **body) -> dict:
    from tests.conftest import host_client

    response = host_client(app, site.host).post(VALIDATE, json={"key": key, **body})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _in(app, site, fn):
    from app.extensions import db
    from app.licensing import service
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        result = fn(service)
        db.session.commit()
        return result


def test_a_change_in_one_process_is_seen_by_another_at_its_next_validation(
        exact_process, second_process, acme, globex):
    from app.licensing import machines

    app = exact_process  # asks Redis every time: sees every change at once
    lic = make_license(app, acme, floating=True, max_machines=1)
    theirs = make_license(app, globex)
    assert _validate(app, acme, lic.key)["code"] == "VALID"  # cached in `app` now
    assert _validate(app, globex, theirs.key)["code"] == "VALID"

    _in(second_process, acme, lambda s: s.suspend(s.get_license(lic.id)))
    assert _validate(app, acme, lic.key)["code"] == "SUSPENDED"
    assert _validate(app, globex, theirs.key)["code"] == "VALID"  # nothing of acme's leaks
    _in(second_process, acme, lambda s: s.reinstate(s.get_license(lic.id)))
    assert _validate(app, acme, lic.key, fingerprint="fp-1")["code"] == "NO_MACHINES"

    _in(second_process, acme,
        lambda s: machines.activate(s.get_license(lic.id), "fp-1"))
    assert _validate(app, acme, lic.key, fingerprint="fp-1")["code"] == "VALID"

    def require_fingerprints(service):
        policy = service.get_policy(lic.policy_id)
        data = service.PolicyInput(**{f: getattr(policy, f)
                                      for f in service.PolicyInput.__dataclass_fields__})
        data.fingerprint_required = True
        service.update_policy(policy, data)

    _in(second_process, acme, require_fingerprints)  # a policy change: tenant-wide
    assert _validate(app, acme, lic.key)["code"] == "FINGERPRINT_SCOPE_REQUIRED"
    # A key of acme's stays unknown on globex's domain, cache or not.
    assert _validate(app, globex, lic.key)["code"] == "NOT_FOUND"


def test_within_its_sync_window_a_process_trusts_its_ledger_then_sees_the_change(
        app, second_process, acme, globex):
    cross_window = _freeze(app)
    lic = make_license(app, acme)
    theirs = make_license(app, globex)
    assert _validate(app, acme, lic.key)["code"] == "VALID"
    assert _validate(app, globex, theirs.key)["code"] == "VALID"

    _in(second_process, acme, lambda s: s.suspend(s.get_license(lic.id)))
    # Within the window the ledger is trusted: the documented price of not asking Redis.
    assert _validate(app, acme, lic.key)["code"] == "VALID"
    cross_window()
    assert _validate(app, acme, lic.key)["code"] == "SUSPENDED"
    assert _validate(app, globex, theirs.key)["code"] == "VALID"

    # A change committed by this process itself is seen at once, window or not.
    _in(app, acme, lambda s: s.reinstate(s.get_license(lic.id)))
    assert _validate(app, acme, lic.key)["code"] == "VALID"
    _in(app, globex, lambda s: s.revoke(s.get_license(theirs.id)))
    assert _validate(app, globex, theirs.key)["code"] == "REVOKED"
    assert _validate(app, acme, lic.key)["code"] == "VALID"  # nothing of globex's leaks


def _watch(app, engine_queries: list[str]):
    from app.extensions import db

    with app.app_context():
        engine = db.engine

    def count_query(conn, cursor, statement, *args):
        engine_queries.append(statement)

    event.listen(engine, "before_cursor_execute", count_query)
    return lambda: event.remove(engine, "before_cursor_execute", count_query)


def test_a_warm_validation_asks_redis_nothing_within_the_window_and_once_after(
        app, acme, globex, round_trips, redis_client):
    from app.licensing import counters

    cross_window = _freeze(app)
    lic = make_license(app, acme)
    make_license(app, globex)
    assert _validate(app, acme, lic.key)["code"] == "VALID"  # warms the caches and ledger

    queries: list[str] = []
    stop = _watch(app, queries)
    try:
        round_trips.clear()
        for n in range(3):
            answer = _validate(app, acme, lic.key, nonce=f"n{n}")
            assert answer["code"] == "VALID" and answer["nonce"] == f"n{n}"
        assert round_trips == [] and queries == []
        cross_window()
        assert _validate(app, acme, lic.key)["code"] == "VALID"
    finally:
        stop()
    # One round trip: what the three owed (takes, counts, log) and the script, pipelined.
    assert len(round_trips) == 1 and queries == []
    with app.app_context():
        keys = counters.keys_for(acme.info.id)
    assert redis_client.hget(keys["counts"], str(lic.id)) == b"5"
    assert redis_client.llen(keys["log"]) == 5


def test_with_no_window_every_validation_is_one_redis_call_and_no_query(
        exact_process, acme, globex, round_trips):
    lic = make_license(exact_process, acme)
    make_license(exact_process, globex)
    assert _validate(exact_process, acme, lic.key)["code"] == "VALID"

    queries: list[str] = []
    stop = _watch(exact_process, queries)
    try:
        round_trips.clear()
        for _ in range(2):
            assert _validate(exact_process, acme, lic.key)["code"] == "VALID"
    finally:
        stop()
    assert len(round_trips) == 2 and all(b"EVALSHA" in trip for trip in round_trips)
    assert queries == []


def test_what_the_ledger_owes_reaches_redis_without_another_validation(
        app, acme, globex, redis_client):
    import time

    from app.licensing import counters

    lic = make_license(app, acme)
    theirs = make_license(app, globex)
    for _ in range(3):
        assert _validate(app, acme, lic.key)["code"] == "VALID"
    assert _validate(app, globex, theirs.key)["code"] == "VALID"
    with app.app_context():
        ours, other = counters.keys_for(acme.info.id), counters.keys_for(globex.info.id)
    deadline = time.monotonic() + 10
    while redis_client.hget(ours["counts"], str(lic.id)) != b"3" and (
            time.monotonic() < deadline):
        time.sleep(0.02)  # the flusher pays within one window; wait for it, never assume
    assert redis_client.hget(ours["counts"], str(lic.id)) == b"3"
    assert redis_client.llen(ours["log"]) == 3
    assert redis_client.hgetall(other["counts"]) == {str(theirs.id).encode(): b"1"}


def test_without_redis_validation_still_answers_from_the_database(app, acme, globex):
    import redis

    from app.licensing import snapshot

    lic = make_license(app, acme)
    capped = make_license(app, acme, max_executions_per_period=5)  # its count is in Redis
    make_license(app, globex)
    assert _validate(app, acme, lic.key)["code"] == "VALID"
    with app.app_context():
        snapshot.cache().forget(acme.info.id, lic.id)
        working = app.extensions["albedo.redis"]
        app.extensions["albedo.redis"] = redis.Redis(host="127.0.0.1", port=1,
                                                     socket_connect_timeout=0.2)
    try:
        response = acme.client.post(VALIDATE, json={"key": lic.key})
        assert response.status_code == 200 and response.get_json()["code"] == "VALID"
        assert "X-RateLimit-Remaining" not in response.headers  # no budget was taken
        assert _validate(app, acme, capped.key)["code"] == "VALID"  # uncounted, not a 500
        _in(app, acme, lambda s: s.revoke(s.get_license(lic.id)))
        assert _validate(app, acme, lic.key)["code"] == "REVOKED"
    finally:
        app.extensions["albedo.redis"] = working


def test_owed_validations_land_even_when_redis_lost_its_scripts(app, acme, globex,
                                                                 redis_client):
    from app.licensing import counters

    cross_window = _freeze(app)
    lic = make_license(app, acme)
    make_license(app, globex)
    for _ in range(3):
        assert _validate(app, acme, lic.key)["code"] == "VALID"
    redis_client.script_flush()  # as after a Redis restart
    cross_window()
    assert _validate(app, acme, lic.key)["code"] == "VALID"
    with app.app_context():
        keys = counters.keys_for(acme.info.id)
    assert redis_client.hget(keys["counts"], str(lic.id)) == b"4"
    assert redis_client.llen(keys["log"]) == 4


def test_a_validation_never_counts_budgets_before_the_flushers_takes_reach_redis(
        app, migrated, acme, globex, monkeypatch):
    """The flusher thread has taken what the ledger owed and is still sending it when a
    validation asks Redis: the validation waits for it, so Redis's answer (which the next
    local decisions count from) includes those takes and the key's budget holds exactly.

    Before, the script could arrive first: it under-counted by the takes in flight, and the
    next validation decided locally was admitted past the budget (the cause of
    test_validation_is_rate_limited_per_key_and_per_ip_and_429s_are_signed failing under
    load)."""
    import threading

    from app.licensing import ledger
    from tests.conftest import host_client

    process = _another_process(migrated, extra={
        **migrated.extra, "ALBEDO_RATE_LIMIT_LICENSE_KEY": "3/hour",
        "ALBEDO_RATE_LIMIT_LICENSE_IP": "100/hour"})
    try:
        lic = make_license(process, acme)
        theirs = make_license(process, globex)
        book = _ledger(process)
        cross_window = _freeze(process)
        book._closed = True  # no flusher thread of its own: this test plays the flusher
        client = host_client(process, acme.host)

        def status() -> int:
            return client.post(VALIDATE, json={"key": lic.key}).status_code

        assert status() == 200  # asks Redis: the key has used 1 of 3
        assert status() == 200  # decided locally: 2 of 3, the take owed to Redis

        in_flight, validated = threading.Event(), threading.Event()
        flusher = threading.current_thread()
        original = ledger.Pipeline.execute

        def slow(self):
            if threading.current_thread() is flusher:
                in_flight.set()
                validated.wait(2)  # the validation, if it does not wait for us (deadline)
            return original(self)

        def flush() -> None:
            with process.app_context():
                book.flush()

        monkeypatch.setattr(ledger.Pipeline, "execute", slow)
        flusher = threading.Thread(target=flush)
        flusher.start()
        assert in_flight.wait(10)
        cross_window()
        assert status() == 200  # asks Redis: 3 of 3
        validated.set()
        flusher.join(10)
        assert status() == 429  # decided locally from Redis's answer: the budget is spent
        assert host_client(process, globex.host).post(
            VALIDATE, json={"key": theirs.key}).status_code == 200  # another key's budget
    finally:
        _dispose(process)
