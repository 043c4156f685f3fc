"""The API's request pipeline: a warm credential costs no query and one Redis round trip (its
rate budgets, which also confirm the cached principal), and every change that concerns a
credential is seen at once by every process holding it in its cache."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import event

from app import create_app
from tests.conftest import host_client

TENANT_GENERATION = b"albedo:tenant-cache:generation"


class Traffic:
    """SQL statements and Redis commands an app sends while counting."""

    def __init__(self, app, monkeypatch):
        from app.extensions import db
        from app.redis import get_redis

        self.statements: list[str] = []
        self.commands: list[tuple] = []
        from redis.connection import AbstractConnection

        with app.app_context():
            get_redis()
            event.listen(db.engine, "before_cursor_execute", self._statement)
        original = AbstractConnection.send_command

        # On the connections themselves: the budgets' script has connections of its own
        # (app.redis.ScriptLine), outside the client's execute_command.
        def counted(connection, *args, **options):
            # The tenant cache's own once-a-second check is not the request's business here.
            if not (args[0] == "GET" and str(args[1]).encode() == TENANT_GENERATION):
                self.commands.append(args)
            return original(connection, *args, **options)

        monkeypatch.setattr(AbstractConnection, "send_command", counted)

    def _statement(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    def reset(self) -> None:
        self.statements.clear()
        self.commands.clear()


def _token(site, email: str) -> dict[str, str]:
    answer = site.client.post("/api/v1/auth/token", json={
        "email": email, "password": "correct horse battery"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def _second_app(migrated, site):
    """Another app instance on the same database and Redis: another process's caches."""
    return host_client(create_app(migrated), site.host)


@pytest.mark.parametrize("credential", ["api_key", "access_token"])
def test_a_warm_request_makes_no_query_and_one_redis_round_trip(
        app, acme, api_caller, monkeypatch, at, credential):
    from app import clock

    at(clock.now())  # a key's last use is sent once a second: the clock does not move here
    caller = api_caller(acme)
    headers = caller.headers if credential == "api_key" else _token(acme, caller.email)
    traffic = Traffic(app, monkeypatch)
    cold = acme.client.get("/api/v1/me", headers=headers)
    assert cold.status_code == 200 and traffic.statements  # read from the database once
    traffic.reset()
    warm = acme.client.get("/api/v1/me", headers=headers)
    assert warm.status_code == 200
    assert warm.get_json()["email"] == caller.email
    assert traffic.statements == []
    # One script: the IP, credential and tenant budgets and the generation checks together.
    assert [c[0] for c in traffic.commands] == ["EVALSHA"], traffic.commands
    assert warm.headers["X-RateLimit-Limit"] and warm.headers["X-RateLimit-Remaining"]
    assert "Retry-After" not in warm.headers


def test_authenticate_runs_once_per_request(app, acme, api_caller, monkeypatch):
    from app.auth import guard

    caller = api_caller(acme, role="RESELLER")
    calls = []
    original = guard._load_api_key
    monkeypatch.setattr(guard, "_load_api_key", lambda *a: calls.append(a) or original(*a))
    # /api/v1/api-keys reads the principal in the guard and again in the handler.
    assert acme.client.get("/api/v1/api-keys", headers=caller.headers).status_code == 200
    assert len(calls) == 1


def _revoked_while_warm_in_two_apps(migrated, site, api_caller):
    """An API key both apps have cached, then revoked in the first: (caller, the other)."""
    caller = api_caller(site)
    other = _second_app(migrated, site)
    for client in (site.client, other, site.client, other):  # both warm
        assert client.get("/api/v1/me", headers=caller.headers).status_code == 200
    assert site.client.delete(f"/api/v1/api-keys/{caller.key_id}",
                              headers=caller.headers).status_code == 204
    return caller, other


def test_a_revoked_key_is_refused_at_once_by_another_app(app, migrated, acme, api_caller):
    caller, other = _revoked_while_warm_in_two_apps(migrated, acme, api_caller)
    refused = other.get("/api/v1/me", headers=caller.headers)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthenticated"


def test_a_key_revoked_before_redis_lost_its_data_is_refused_by_another_app(
        app, migrated, acme, api_caller):
    """Redis keeps nothing on disk: restarted, it reads the revoked key's counter as 0 again,
    the value the other app cached the key under. The epoch tells them apart."""
    from app.redis import get_redis

    caller, other = _revoked_while_warm_in_two_apps(migrated, acme, api_caller)
    with app.app_context():
        get_redis().flushdb()  # a restart: every counter gone, the bump with them
    refused = other.get("/api/v1/me", headers=caller.headers)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthenticated"


def test_role_change_and_deactivation_are_seen_at_once_by_another_app(
        app, migrated, acme, api_caller):
    owner = api_caller(acme, role="RESELLER")
    customer = api_caller(acme)
    other = _second_app(migrated, acme)
    token = _token(acme, customer.email)
    for headers in (customer.headers, token):
        assert other.get("/api/v1/me", headers=headers).get_json()["role"] == "USER"
        assert other.get("/api/v1/me", headers=headers).status_code == 200  # warm
    changed = acme.client.patch(f"/api/v1/users/{customer.user_id}", headers=owner.headers,
                                json={"role": "RESELLER"})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert other.get("/api/v1/me", headers=customer.headers).get_json()["role"] == "RESELLER"
    # A role change ends the user's access tokens (session version), everywhere at once.
    assert other.get("/api/v1/me", headers=token).status_code == 401
    assert acme.client.patch(f"/api/v1/users/{customer.user_id}", headers=owner.headers,
                             json={"is_active": False}).status_code == 200
    assert other.get("/api/v1/me", headers=customer.headers).status_code == 401


def test_a_password_change_ends_access_tokens_at_once_in_another_app(
        app, migrated, acme, api_caller):
    from app.auth import account
    from app.auth.models import User
    from app.extensions import db
    from tenants.context import activate

    caller = api_caller(acme)
    token = _token(acme, caller.email)
    other = _second_app(migrated, acme)
    assert other.get("/api/v1/me", headers=token).status_code == 200
    assert other.get("/api/v1/me", headers=token).status_code == 200
    with app.app_context(), activate(acme.info):
        account.change_password(db.session.get(User, caller.user_id), "correct horse battery",
                                "a brand new passphrase")
        db.session.commit()
    assert other.get("/api/v1/me", headers=token).status_code == 401


def test_a_suspended_tenant_is_refused_at_once_by_another_app(
        app, migrated, acme, platform, api_caller):
    admin = api_caller(platform, role="ADMIN")
    caller = api_caller(acme)
    other = _second_app(migrated, acme)
    assert other.get("/api/v1/me", headers=caller.headers).status_code == 200
    assert other.get("/api/v1/me", headers=caller.headers).status_code == 200
    suspended = platform.client.post(
        f"/api/v1/platform/resellers/{acme.info.id}/suspend", headers=admin.headers)
    assert suspended.status_code == 200, suspended.get_data(as_text=True)
    refused = other.get("/api/v1/me", headers=caller.headers)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "tenant_suspended"


def test_a_cached_key_stays_bound_to_its_tenant(app, acme, globex, api_caller):
    caller = api_caller(acme)
    assert acme.client.get("/api/v1/me", headers=caller.headers).status_code == 200
    assert acme.client.get("/api/v1/me", headers=caller.headers).status_code == 200
    elsewhere = globex.client.get("/api/v1/me", headers=caller.headers)
    assert elsewhere.status_code == 401
    assert elsewhere.get_json()["error"]["code"] == "unauthenticated"


def test_without_redis_every_request_reads_the_database(migrated, app, acme, api_caller):
    caller = api_caller(acme)
    down = host_client(create_app(migrated.with_overrides(redis_url="redis://127.0.0.1:1/0")),
                       acme.host)
    assert down.get("/api/v1/me", headers=caller.headers).status_code == 200
    assert down.get("/api/v1/me", headers=caller.headers).status_code == 200
    assert down.application.extensions["albedo.principal_cache"].get(
        acme.info.id, _digest(caller)) is None  # nothing it could not confirm later
    assert acme.client.delete(f"/api/v1/api-keys/{caller.key_id}",
                              headers=caller.headers).status_code == 204
    assert down.get("/api/v1/me", headers=caller.headers).status_code == 401


def _digest(caller) -> str:
    from app.auth.principal_cache import credential_hash

    return credential_hash(caller.headers["Authorization"].split(" ", 1)[1])


def _warm_then_wait(settings, host, headers, conn) -> None:
    client = host_client(create_app(settings), host)
    statuses = [client.get("/api/v1/me", headers=headers).status_code for _ in range(2)]
    conn.send(statuses)
    conn.recv()  # the other process has revoked the key
    conn.send(client.get("/api/v1/me", headers=headers).status_code)


def test_revocation_is_immediate_across_real_processes(app, migrated, acme, api_caller):
    caller = api_caller(acme)
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    process = ctx.Process(target=_warm_then_wait,
                          args=(migrated, acme.host, caller.headers, there))
    process.start()
    try:
        assert here.poll(60) and here.recv() == [200, 200]  # cached over there
        assert acme.client.delete(f"/api/v1/api-keys/{caller.key_id}",
                                  headers=caller.headers).status_code == 204
        here.send("revoked")
        assert here.poll(60) and here.recv() == 401
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
