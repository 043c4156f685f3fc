"""API keys: shown once, hashed, scoped, expiring, revocable at once, tenant-bound."""

from datetime import timedelta

from sqlalchemy import select

from app import clock


def test_create_shows_the_secret_once_and_stores_a_hash(app, acme, api_caller):
    from app.auth.models import ApiKey
    from app.extensions import db
    from tenants import activate

    caller = api_caller(acme, role="USER")
    token = acme.client.post("/api/v1/auth/token", json={
        "email": caller.email, "password": "correct horse battery"}).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    created = acme.client.post("/api/v1/api-keys", headers=bearer, json={
        "name": "widget", "scopes": ["agents:execute"]})
    assert created.status_code == 201
    body = created.get_json()
    raw = body["key"]
    assert raw.startswith(body["prefix"] + "_") and raw.endswith(body["last_four"])
    with app.app_context(), activate(acme.info):
        row = db.session.scalars(select(ApiKey).where(ApiKey.prefix == body["prefix"])).one()
        assert raw not in (row.key_hash, row.prefix) and len(row.key_hash) == 64
    listed = acme.client.get("/api/v1/api-keys", headers=bearer).get_json()
    assert {"key"} & set(listed["items"][0]) == set()
    me = acme.client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).get_json()
    assert me["kind"] == "api_key" and me["scopes"] == ["agents:execute"]


def test_revoked_and_expired_keys_are_401(app, acme, api_caller):
    from app.auth.models import ApiKey
    from app.extensions import db
    from tenants import activate

    caller = api_caller(acme)
    assert acme.client.get("/api/v1/me", headers=caller.headers).status_code == 200
    assert acme.client.delete(f"/api/v1/api-keys/{caller.key_id}",
                              headers=caller.headers).status_code == 204
    revoked = acme.client.get("/api/v1/me", headers=caller.headers)
    assert revoked.status_code == 401

    expiring = api_caller(acme)
    with app.app_context(), activate(acme.info):
        db.session.get(ApiKey, expiring.key_id).expires_at = clock.now() + timedelta(hours=1)
        db.session.commit()
    assert acme.client.get("/api/v1/me", headers=expiring.headers).status_code == 200
    later = clock.now() + timedelta(hours=1, seconds=1)
    clock.set_clock(lambda: later)
    assert acme.client.get("/api/v1/me", headers=expiring.headers).status_code == 401


def test_a_key_of_another_tenant_is_401(app, acme, globex, api_caller):
    caller = api_caller(acme)
    response = globex.client.get("/api/v1/me", headers=caller.headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"


def test_keys_are_listed_and_revoked_only_by_their_owner(app, acme, globex, api_caller):
    alice = api_caller(acme, email="alice@example.com")
    bob = api_caller(acme, email="bob@example.com")
    globex_alice = api_caller(globex, email="alice@example.com")
    listed = acme.client.get("/api/v1/api-keys", headers=alice.headers).get_json()["items"]
    assert [k["id"] for k in listed] == [str(alice.key_id)]
    # Bob's and another tenant's key ids are simply not found (404, not 403: no hint).
    for key_id in (bob.key_id, globex_alice.key_id):
        response = acme.client.delete(f"/api/v1/api-keys/{key_id}", headers=alice.headers)
        assert response.status_code == 404
    assert acme.client.get("/api/v1/me", headers=bob.headers).status_code == 200
    assert globex.client.get("/api/v1/me", headers=globex_alice.headers).status_code == 200


def test_a_key_cannot_mint_keys_and_scopes_are_validated(app, acme, api_caller):
    caller = api_caller(acme)
    response = acme.client.post("/api/v1/api-keys", headers=caller.headers,
                                json={"name": "x", "scopes": ["agents:read"]})
    assert response.status_code == 403
    token = acme.client.post("/api/v1/auth/token", json={
        "email": caller.email, "password": "correct horse battery"}).get_json()["access_token"]
    bad = acme.client.post("/api/v1/api-keys", headers={"Authorization": f"Bearer {token}"},
                           json={"name": "x", "scopes": ["root:everything"]})
    assert bad.status_code == 422
    assert bad.get_json()["error"]["code"] == "validation_failed"
    assert "scopes" in bad.get_json()["error"]["details"]["fields"]


def test_last_use_is_recorded_without_a_write_per_request(app, acme, api_caller):
    from app.auth.models import ApiKey
    from app.extensions import db
    from jobs.worker import run_worker
    from tenants import activate

    caller = api_caller(acme)
    writes = []
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine

    def count_updates(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            writes.append(statement)

    event.listen(engine, "before_cursor_execute", count_updates)
    try:
        for _ in range(5):
            assert acme.client.get("/api/v1/me", headers=caller.headers).status_code == 200
        assert writes == []
        listed = acme.client.get(f"/api/v1/api-keys/{caller.key_id}",
                                 headers=caller.headers).get_json()
        assert listed["last_used_at"] is not None
        # The flush job (delayed a minute in production) writes it to the row.
        with app.app_context():
            from jobs.enqueue import enqueue

            enqueue("auth.flush_key_usage", tenant_id=None)
        run_worker(app, ["default"], burst=True, simple=True)
        assert len(writes) >= 1
    finally:
        event.remove(engine, "before_cursor_execute", count_updates)
    with app.app_context(), activate(acme.info):
        assert db.session.get(ApiKey, caller.key_id).last_used_at is not None
