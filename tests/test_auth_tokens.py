"""Access tokens and rotating refresh tokens."""

from datetime import timedelta

from app import clock

PASSWORD = "correct horse battery"


def _token(site, email, password=PASSWORD):
    return site.client.post("/api/v1/auth/token", json={"email": email, "password": password})


def _bearer(site, email):
    return {"Authorization": f"Bearer {_token(site, email).get_json()['access_token']}"}


def test_token_pair_authenticates_me_on_its_own_tenant_only(app, acme, globex, make_user):
    make_user(acme, "alice@example.com", role="USER")
    make_user(globex, "alice@example.com", role="USER")  # same email, other tenant
    response = _token(acme, "alice@example.com")
    assert response.status_code == 200
    pair = response.get_json()
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 900
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    me = acme.client.get("/api/v1/me", headers=bearer).get_json()
    assert me["kind"] == "user" and me["role"] == "USER" and me["tenant"]["slug"] == "acme"
    # The same token on globex's domain is unknown there, even though alice exists at globex.
    other = globex.client.get("/api/v1/me", headers=bearer)
    assert other.status_code == 401
    assert other.get_json()["error"]["code"] == "unauthenticated"


def test_wrong_password_is_401_and_audited(app, acme, make_user):
    make_user(acme, "alice@example.com")
    response = _token(acme, "alice@example.com", "wrong password!")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_credentials"
    unknown = _token(acme, "nobody@example.com", "whatever12345")
    assert unknown.get_json()["error"] == {**unknown.get_json()["error"],
                                           "code": "invalid_credentials"}
    from sqlalchemy import select

    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(acme.info):
        actions = [e.action for e in db.session.scalars(select(AuditEvent))]
    assert actions.count("sign_in_failed") == 2


def test_access_token_expires_after_15_minutes(app, acme, make_user):
    make_user(acme, "alice@example.com")
    start = clock.now()
    clock.set_clock(lambda: start)
    bearer = _bearer(acme, "alice@example.com")
    assert acme.client.get("/api/v1/me", headers=bearer).status_code == 200
    clock.set_clock(lambda: start + timedelta(minutes=15, seconds=1))
    assert acme.client.get("/api/v1/me", headers=bearer).status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_family(app, acme, make_user):
    make_user(acme, "alice@example.com")
    first = _token(acme, "alice@example.com").get_json()
    second = acme.client.post("/api/v1/auth/refresh",
                              json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    # The spent token comes back (stolen copy): refused, and the whole family is revoked.
    reuse = acme.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.get_json()["error"]["code"] == "invalid_refresh_token"
    after = acme.client.post("/api/v1/auth/refresh",
                             json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401


def test_refresh_token_of_another_tenant_is_unknown(app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    pair = _token(acme, "alice@example.com").get_json()
    response = globex.client.post("/api/v1/auth/refresh",
                                  json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 401
    # ...and it still works at home: globex's attempt did not revoke it.
    assert acme.client.post("/api/v1/auth/refresh",
                            json={"refresh_token": pair["refresh_token"]}).status_code == 200


def test_logout_revokes_the_refresh_token(app, acme, make_user):
    make_user(acme, "alice@example.com")
    pair = _token(acme, "alice@example.com").get_json()
    assert acme.client.post("/api/v1/auth/logout",
                            json={"refresh_token": pair["refresh_token"]}).status_code == 204
    assert acme.client.post("/api/v1/auth/refresh",
                            json={"refresh_token": pair["refresh_token"]}).status_code == 401


def test_password_change_ends_existing_tokens(app, acme, make_user):
    from app.auth.models import User
    from app.auth.service import set_password
    from app.extensions import db
    from tenants import activate

    user_id = make_user(acme, "alice@example.com")
    bearer = _bearer(acme, "alice@example.com")
    with app.app_context(), activate(acme.info):
        set_password(db.session.get(User, user_id), "a brand new password")
        db.session.commit()
    assert acme.client.get("/api/v1/me", headers=bearer).status_code == 401


def test_repeated_failures_lock_the_account_per_tenant(app, acme, globex, make_user):
    make_user(acme, "alice@example.com")
    make_user(globex, "alice@example.com")
    codes = [_token(acme, "alice@example.com", "wrong password!").status_code for _ in range(5)]
    assert codes == [401] * 5
    locked = _token(acme, "alice@example.com")  # even the right password now waits
    assert locked.status_code == 429
    assert locked.get_json()["error"]["code"] == "account_locked"
    assert _token(globex, "alice@example.com").status_code == 200
