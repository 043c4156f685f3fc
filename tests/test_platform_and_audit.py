"""Platform operators manage resellers; the audit log shows each tenant its own events."""

from tests.conftest import login


def test_only_platform_admins_reach_platform_endpoints(app, platform, acme, api_caller):
    reseller = api_caller(acme, role="RESELLER")
    assert acme.client.get("/api/v1/platform/resellers",
                           headers=reseller.headers).status_code == 403
    admin = api_caller(platform, role="ADMIN")
    assert platform.client.get("/api/v1/platform/resellers",
                               headers=admin.headers).status_code == 200
    # A platform admin's key means nothing on a reseller's domain.
    assert acme.client.get("/api/v1/platform/resellers",
                           headers=admin.headers).status_code == 401


def test_onboard_a_reseller_then_suspend_and_reinstate_it(app, platform, acme, api_caller):
    admin = api_caller(platform, role="ADMIN")
    created = platform.client.post("/api/v1/platform/resellers", headers=admin.headers, json={
        "slug": "initech", "name": "Initech", "primary_color": "#123456"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["base_url"] == "http://initech.localhost:5000"
    client = app.test_client()
    assert client.get("/api/v1/tenant", headers={"Host": "initech.localhost"}).get_json()[
        "primary_color"] == "#123456"
    duplicate = platform.client.post("/api/v1/platform/resellers", headers=admin.headers,
                                     json={"slug": "acme", "name": "Again"})
    assert duplicate.status_code == 422
    assert duplicate.get_json()["error"]["details"]["fields"]["slug"] == "is taken"
    bad_colour = platform.client.post("/api/v1/platform/resellers", headers=admin.headers,
                                      json={"slug": "x1", "name": "X", "accent_color": "red"})
    assert bad_colour.status_code == 422

    suspended = platform.client.post(f"/api/v1/platform/resellers/{acme.info.id}/suspend",
                                     headers=admin.headers)
    assert suspended.get_json()["status"] == "suspended"
    assert acme.client.get("/api/v1/tenant").status_code == 403
    platform.client.post(f"/api/v1/platform/resellers/{acme.info.id}/reinstate",
                         headers=admin.headers)
    assert acme.client.get("/api/v1/tenant").status_code == 200
    # The platform tenant is not a reseller: not suspendable through this endpoint.
    assert platform.client.post(f"/api/v1/platform/resellers/{platform.info.id}/suspend",
                                headers=admin.headers).status_code == 404


def test_domains_and_users_of_a_reseller(app, platform, acme, globex, api_caller, make_user):
    admin = api_caller(platform, role="ADMIN")
    make_user(acme, "alice@example.com")
    make_user(globex, "gina@example.com")
    added = platform.client.post(f"/api/v1/platform/resellers/{acme.info.id}/domains",
                                 headers=admin.headers,
                                 json={"hostname": "Agents.Acme-Corp.Example", "primary": True})
    assert added.status_code == 201 and added.get_json()["hostname"] == "agents.acme-corp.example"
    response = app.test_client().get("/api/v1/tenant",
                                     headers={"Host": "agents.acme-corp.example"})
    assert response.get_json()["slug"] == "acme"
    taken = platform.client.post(f"/api/v1/platform/resellers/{globex.info.id}/domains",
                                 headers=admin.headers,
                                 json={"hostname": "agents.acme-corp.example"})
    assert taken.status_code == 422
    users = platform.client.get(f"/api/v1/platform/resellers/{acme.info.id}/users",
                                headers=admin.headers).get_json()["items"]
    assert [u["email"] for u in users] == ["alice@example.com"]
    domain_id = added.get_json()["id"]
    assert platform.client.delete(f"/api/v1/platform/resellers/{acme.info.id}/domains/"
                                  f"{domain_id}", headers=admin.headers).status_code == 204
    assert app.test_client().get("/api/v1/tenant", headers={
        "Host": "agents.acme-corp.example"}).status_code == 404


def test_resellers_change_their_own_branding_only(app, acme, globex, api_caller):
    owner = api_caller(acme, role="RESELLER")
    customer = api_caller(acme, role="USER")
    changed = acme.client.patch("/api/v1/tenant", headers=owner.headers,
                                json={"display_name": "Acme AI", "accent_color": "#000000"})
    assert changed.status_code == 200 and changed.get_json()["display_name"] == "Acme AI"
    assert "Acme AI" in acme.client.get("/login").get_data(as_text=True)
    assert acme.client.patch("/api/v1/tenant", headers=customer.headers,
                             json={"display_name": "Hacked"}).status_code == 403
    assert globex.client.get("/api/v1/tenant").get_json()["display_name"] == "Globex AI"
    bad = acme.client.patch("/api/v1/tenant", headers=owner.headers,
                            json={"primary_color": "#12345"})
    assert bad.status_code == 422 and "primary_color" in bad.get_json()["error"]["details"][
        "fields"]


def test_audit_log_each_reseller_sees_its_own_admins_see_all(app, platform, acme, globex,
                                                            api_caller, make_user):
    make_user(acme, "alice@example.com")
    make_user(globex, "alice@example.com")
    login(acme, "alice@example.com")
    login(globex, "alice@example.com", "wrong password")
    acme_owner = api_caller(acme, role="RESELLER")
    globex_owner = api_caller(globex, role="RESELLER")
    admin = api_caller(platform, role="ADMIN")
    platform.client.post(f"/api/v1/platform/resellers/{acme.info.id}/suspend",
                         headers=admin.headers)
    platform.client.post(f"/api/v1/platform/resellers/{acme.info.id}/reinstate",
                         headers=admin.headers)

    acme_log = acme.client.get("/api/v1/audit-events", headers=acme_owner.headers).get_json()
    acme_actions = {e["action"] for e in acme_log["items"]}
    assert {"sign_in", "tenant_suspended", "tenant_reinstated"} <= acme_actions
    assert "sign_in_failed" not in acme_actions
    assert {e["tenant_id"] for e in acme_log["items"]} == {str(acme.info.id)}
    globex_log = globex.client.get("/api/v1/audit-events",
                                   headers=globex_owner.headers).get_json()
    assert {e["action"] for e in globex_log["items"]} == {"sign_in_failed"}

    everything = platform.client.get("/api/v1/audit-events?limit=100",
                                     headers=admin.headers).get_json()["items"]
    assert {str(acme.info.id), str(globex.info.id)} <= {e["tenant_id"] for e in everything}
    only_globex = platform.client.get("/api/v1/audit-events?tenant=globex",
                                      headers=admin.headers).get_json()["items"]
    assert {e["tenant_id"] for e in only_globex} == {str(globex.info.id)}

    customer = api_caller(acme, role="USER")
    assert acme.client.get("/api/v1/audit-events",
                           headers=customer.headers).status_code == 403


def test_audit_events_cannot_be_rewritten(app, acme, make_user, owner_engine):
    import pytest
    import sqlalchemy as sa

    make_user(acme, "alice@example.com")
    login(acme, "alice@example.com")
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), owner_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT set_config('app.cross_tenant', 'on', true)"))
        conn.execute(sa.text("UPDATE audit_events SET action = 'sign_in_failed'"))


def test_pagination_walks_every_item_once_and_rejects_forged_cursors(app, acme, globex,
                                                                     api_caller):
    from app.auth.api_keys import create_key
    from app.auth.models import ApiKey, User
    from app.extensions import db
    from tenants import activate

    caller = api_caller(acme)
    other = api_caller(globex)
    token = acme.client.post("/api/v1/auth/token", json={
        "email": caller.email, "password": "correct horse battery"}).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    with app.app_context(), activate(acme.info):
        user = db.session.get(User, caller.user_id)
        for i in range(6):
            create_key(user, f"key {i}", ["agents:read"])
        db.session.commit()
    seen, cursor = [], None
    while True:
        url = "/api/v1/api-keys?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = acme.client.get(url, headers=bearer).get_json()
        seen += [k["id"] for k in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7
    forged = acme.client.get("/api/v1/api-keys?cursor=eyJmb28iOjF9.abc", headers=bearer)
    assert forged.status_code == 400 and forged.get_json()["error"]["code"] == "invalid_cursor"
    too_many = acme.client.get("/api/v1/api-keys?limit=1000", headers=bearer)
    assert too_many.status_code == 422
    # A cursor minted at acme means nothing at globex.
    page = acme.client.get("/api/v1/api-keys?limit=1", headers=bearer).get_json()
    foreign = globex.client.get(f"/api/v1/api-keys?cursor={page['next_cursor']}",
                                headers=other.headers)
    assert foreign.status_code == 400
    assert ApiKey is not None
