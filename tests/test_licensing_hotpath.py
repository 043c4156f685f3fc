"""The validation hot path: cached snapshots that every process sees go stale, one Redis
round trip and no query per warm validation, and answers even without Redis."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from tests.licensing_support import VALIDATE, make_license


@pytest.fixture
def second_process(app, migrated):
    """Another app over the same database and Redis: its own snapshot cache, as another
    gunicorn worker would have."""
    from app import create_app
    from app.extensions import db

    other = create_app(migrated)
    yield other
    with other.app_context():
        db.session.remove()


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
        app, second_process, acme, globex):
    from app.licensing import machines

    lic = make_license(app, acme, floating=True, max_machines=1)
    theirs = make_license(app, globex)
    assert _validate(app, acme, lic.key)["code"] == "VALID"  # cached in `app` now
    assert _validate(app, globex, theirs.key)["code"] == "VALID"

    _in(second_process, acme, lambda s: s.suspend(s.get_license(lic.id)))
    assert _validate(app, acme, lic.key)["code"] == "SUSPENDED"
    assert _validate(app, globex, theirs.key)["code"] == "VALID"  # nothing of acme's leaks
    _in(second_process, acme, lambda s: s.reinstate(s.get_license(lic.id)))
    assert _validate(app, acme, lic.key, fingerprint="fp-1")["code"] == "NO_MACHINE"

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


def test_a_warm_validation_is_one_redis_call_and_no_query(app, acme, globex):
    from app.extensions import db
    from app.redis import get_redis

    lic = make_license(app, acme)
    make_license(app, globex)
    assert _validate(app, acme, lic.key)["code"] == "VALID"  # warms the caches

    queries: list[str] = []
    redis_calls: list[str] = []
    with app.app_context():
        engine = db.engine
        client = get_redis()

    def count_query(conn, cursor, statement, *args):
        queries.append(statement)

    original = client.execute_command

    def count_redis(*args, **kwargs):
        redis_calls.append(str(args[0]))
        return original(*args, **kwargs)

    event.listen(engine, "before_cursor_execute", count_query)
    client.execute_command = count_redis
    try:
        answer = _validate(app, acme, lic.key, nonce="n1")
    finally:
        event.remove(engine, "before_cursor_execute", count_query)
        del client.execute_command
    assert answer["code"] == "VALID" and answer["nonce"] == "n1"
    assert queries == []
    assert redis_calls == ["EVALSHA"]


def test_without_redis_validation_still_answers_from_the_database(app, acme, globex):
    import redis

    from app.licensing import snapshot

    lic = make_license(app, acme)
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
        _in(app, acme, lambda s: s.revoke(s.get_license(lic.id)))
        assert _validate(app, acme, lic.key)["code"] == "REVOKED"
    finally:
        app.extensions["albedo.redis"] = working
