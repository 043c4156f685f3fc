"""Resellers manage their own people: roles and access, audited, effective at once."""


def test_reseller_lists_and_promotes_within_its_tenant_only(app, acme, globex, api_caller):
    owner = api_caller(acme, role="RESELLER", email="owner@example.com")
    alice = api_caller(acme, role="USER", email="alice@example.com")
    globex_alice = api_caller(globex, role="USER", email="alice@example.com")

    listed = acme.client.get("/api/v1/users", headers=owner.headers).get_json()["items"]
    assert sorted(u["email"] for u in listed) == ["alice@example.com", "owner@example.com"]
    customers = acme.client.get("/api/v1/users?role=USER", headers=owner.headers).get_json()
    assert [u["email"] for u in customers["items"]] == ["alice@example.com"]

    promoted = acme.client.patch(f"/api/v1/users/{alice.user_id}", headers=owner.headers,
                                 json={"role": "RESELLER"})
    assert promoted.status_code == 200 and promoted.get_json()["role"] == "RESELLER"
    # globex's alice: not found from acme, and untouched.
    assert acme.client.patch(f"/api/v1/users/{globex_alice.user_id}", headers=owner.headers,
                             json={"role": "RESELLER"}).status_code == 404
    me = globex.client.get("/api/v1/me", headers=globex_alice.headers).get_json()
    assert me["role"] == "USER"

    log = acme.client.get("/api/v1/audit-events?action=role_changed",
                          headers=owner.headers).get_json()["items"]
    assert log[0]["details"] == {"before": "USER", "after": "RESELLER"}
    assert log[0]["target_id"] == str(alice.user_id)


def test_customers_cannot_manage_users_and_nobody_changes_themselves(app, acme, api_caller):
    owner = api_caller(acme, role="RESELLER")
    alice = api_caller(acme, role="USER")
    assert acme.client.get("/api/v1/users", headers=alice.headers).status_code == 403
    assert acme.client.patch(f"/api/v1/users/{owner.user_id}", headers=alice.headers,
                             json={"role": "USER"}).status_code == 403
    own = acme.client.patch(f"/api/v1/users/{owner.user_id}", headers=owner.headers,
                            json={"role": "USER"})
    assert own.status_code == 409 and own.get_json()["error"]["code"] == "cannot_change_self"
    bad = acme.client.patch(f"/api/v1/users/{alice.user_id}", headers=owner.headers,
                            json={"role": "ADMIN"})
    assert bad.status_code == 422


def test_deactivation_ends_access_at_once(app, acme, api_caller):
    owner = api_caller(acme, role="RESELLER")
    alice = api_caller(acme, role="USER", email="alice@example.com")
    pair = acme.client.post("/api/v1/auth/token", json={
        "email": "alice@example.com", "password": "correct horse battery"}).get_json()
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    assert acme.client.get("/api/v1/me", headers=bearer).status_code == 200
    done = acme.client.patch(f"/api/v1/users/{alice.user_id}", headers=owner.headers,
                             json={"is_active": False})
    assert done.status_code == 200 and done.get_json()["is_active"] is False
    assert acme.client.get("/api/v1/me", headers=bearer).status_code == 401
    assert acme.client.get("/api/v1/me", headers=alice.headers).status_code == 401
    assert acme.client.post("/api/v1/auth/refresh", json={
        "refresh_token": pair["refresh_token"]}).status_code == 401
    acme.client.patch(f"/api/v1/users/{alice.user_id}", headers=owner.headers,
                      json={"is_active": True})
    assert acme.client.get("/api/v1/me", headers=alice.headers).status_code == 200
