"""Every budget of a request (IP, credential, tenant) taken in one Redis script, with
flask-limiter's keys, order, headers and refusals; no cookie session on API paths."""

from __future__ import annotations

from app import create_app
from tests.conftest import host_client


def _app(migrated, **limits):
    extra = {**migrated.extra, **{f"ALBEDO_RATE_LIMIT_{k.upper()}": v
                                  for k, v in limits.items()}}
    return create_app(migrated.with_overrides(extra=extra))


def test_each_budget_is_counted_on_flask_limiters_keys(app, acme, api_caller, redis_client):
    caller = api_caller(acme)
    assert acme.client.get("/api/v1/me", headers=caller.headers).status_code == 200
    current = {k.decode(): int(redis_client.get(k)) for k in redis_client.keys("LIMITS:*")
               if not k.endswith(b"/-1")}
    scopes = sorted(k.split("/")[3] for k in current)  # LIMITS:{LIMITER/prefix/key/scope/…}
    assert scopes == ["credential", "ip", "tenant"]
    assert set(current.values()) == {1}


def test_the_credential_budget_refuses_one_credential_only(migrated, app, acme, api_caller):
    client = host_client(_app(migrated, credential="2/hour"), acme.host)
    first, second = api_caller(acme), api_caller(acme)
    codes = [client.get("/api/v1/me", headers=first.headers).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.get("/api/v1/me", headers=first.headers)
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited" and "2 per 1 hour" in error["message"]
    assert refused.headers["X-RateLimit-Limit"] == "2"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.headers["X-Request-ID"]
    assert client.get("/api/v1/me", headers=second.headers).status_code == 200


def test_the_tenant_budget_is_shared_by_every_credential_of_the_tenant(
        migrated, app, acme, globex, api_caller):
    application = _app(migrated, tenant="3/hour")
    client = host_client(application, acme.host)
    callers = [api_caller(acme) for _ in range(4)]
    codes = [client.get("/api/v1/me", headers=c.headers).status_code for c in callers]
    assert codes == [200, 200, 200, 429]
    other = api_caller(globex)
    assert host_client(application, globex.host).get(
        "/api/v1/me", headers=other.headers).status_code == 200


def test_headers_name_the_smallest_budget_and_count_down(migrated, app, acme, api_caller):
    client = host_client(_app(migrated, ip="50/hour", credential="10/hour",
                              tenant="1000/hour"), acme.host)
    caller = api_caller(acme)
    answers = [client.get("/api/v1/me", headers=caller.headers) for _ in range(2)]
    # flask-limiter's rule: no budget of the route's own, so the first shared one (the IP's).
    assert [a.headers["X-RateLimit-Limit"] for a in answers] == ["50", "50"]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["49", "48"]
    assert "Retry-After" not in answers[0].headers


def test_api_paths_open_no_cookie_session(app, acme, make_user):
    from tests.conftest import login

    make_user(acme, "ann@example.com")
    assert login(acme, "ann@example.com").status_code in (302, 303)
    answer = acme.client.get("/api/v1/me")
    # A signed-in browser is not an API caller: the bearer credential is the only way in.
    assert answer.status_code == 401
    assert "Set-Cookie" not in answer.headers
    assert "Cookie" not in answer.headers.get("Vary", "")
    assert acme.client.get("/").status_code in (200, 302)  # pages keep their session
