"""Every /api answer that is not 2xx is the error envelope, for every route there is."""

import re

import pytest

from app import create_app

UUID_ZERO = "00000000-0000-0000-0000-000000000000"


def _assert_envelope(response, status_range=(400, 499)):
    assert status_range[0] <= response.status_code <= status_range[1], (
        response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"])
    assert error["message"] and isinstance(error["details"], dict) and error["request_id"]
    assert "Traceback" not in response.get_data(as_text=True)


def _api_rules(app):
    return [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/")]


def _concrete(rule, value):
    # <any(a, b):name> takes its first choice (a real route); other variables take ``value``.
    path = re.sub(r"<any\(([^,)]+)[^)]*\):[a-z_]+>", lambda m: m.group(1).strip(), rule.rule)
    return re.sub(r"<(?:[a-z]+:)?[a-z_]+>", value, path)


def test_the_walk_covers_the_api(app):
    rules = {r.rule for r in _api_rules(app)}
    assert {"/api/v1/tenant", "/api/v1/auth/token", "/api/v1/api-keys",
            "/api/v1/api-keys/<uuid:key_id>", "/api/v1/me"} <= rules


def test_every_api_route_answers_a_wrong_method_with_the_envelope(app, acme, api_caller):
    caller = api_caller(acme)
    for rule in _api_rules(app):
        wrong = next(m for m in ("PATCH", "PUT", "DELETE", "POST", "GET")
                     if m not in rule.methods)
        response = acme.client.open(_concrete(rule, UUID_ZERO), method=wrong,
                                    headers=caller.headers)
        _assert_envelope(response)
        assert response.status_code == 405, rule.rule


def test_every_api_route_answers_malformed_json_with_the_envelope(app, acme, api_caller):
    caller = api_caller(acme)
    for rule in _api_rules(app):
        for method in rule.methods & {"POST", "PUT", "PATCH"}:
            response = acme.client.open(_concrete(rule, UUID_ZERO), method=method,
                                        data="{not json", content_type="application/json",
                                        headers=caller.headers)
            _assert_envelope(response)


def test_every_api_route_answers_a_bad_id_with_the_envelope(app, acme, api_caller):
    caller = api_caller(acme)
    for rule in _api_rules(app):
        if "<" not in rule.rule:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            for bad in ("not-an-id", UUID_ZERO):
                response = acme.client.open(_concrete(rule, bad), method=method,
                                            headers=caller.headers,
                                            json={} if method in ("POST", "PUT", "PATCH")
                                            else None)
                _assert_envelope(response)


def test_unknown_path_wrong_type_unknown_field_and_oversized_body(app, acme, api_caller):
    caller = api_caller(acme)
    response = acme.client.get("/api/v1/no-such-thing")
    _assert_envelope(response)
    assert response.get_json()["error"]["code"] == "not_found"

    form = acme.client.post("/api/v1/auth/token", data={"email": "a@b.c", "password": "x"})
    _assert_envelope(form)
    assert form.status_code == 415

    unknown = acme.client.post("/api/v1/auth/token", json={
        "email": "a@example.com", "password": "x", "admin": True})
    _assert_envelope(unknown)
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["details"]["fields"] == {
        "admin": ["Unknown field."]}

    big = acme.client.post("/api/v1/api-keys", headers=caller.headers,
                           data='{"name": "' + "x" * 2_000_000 + '"}',
                           content_type="application/json")
    _assert_envelope(big)
    assert big.status_code == 413

    bad_json = acme.client.post("/api/v1/auth/token", data="{oops",
                                content_type="application/json")
    assert bad_json.status_code == 400
    assert bad_json.get_json()["error"]["code"] == "malformed_json"


def test_missing_credentials_and_missing_scope(app, acme, api_caller):
    from flask.views import MethodView

    from app.auth.guard import require

    class Probe(MethodView):
        @require("licenses:write")
        def get(self):
            return {"ok": True}

    app.add_url_rule("/api/v1/_scope_probe", view_func=Probe.as_view("scope_probe"))
    response = acme.client.get("/api/v1/me")
    _assert_envelope(response)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"]
    narrow = api_caller(acme, scopes=["agents:read"])
    denied = acme.client.get("/api/v1/_scope_probe", headers=narrow.headers)
    _assert_envelope(denied)
    assert denied.status_code == 403
    assert denied.get_json()["error"] == {**denied.get_json()["error"],
                                          "code": "insufficient_scope",
                                          "details": {"required": ["licenses:write"]}}
    allowed = api_caller(acme, scopes=["licenses:write"])
    assert acme.client.get("/api/v1/_scope_probe", headers=allowed.headers).status_code == 200


def test_an_unexpected_error_is_a_500_envelope_without_a_trace(app, acme):
    @app.get("/api/v1/_boom")
    def boom():
        raise RuntimeError("secret internals")

    response = acme.client.get("/api/v1/_boom")
    _assert_envelope(response, (500, 500))
    assert "secret internals" not in response.get_data(as_text=True)
    page = acme.client.get("/_boom_page_missing")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_openapi_document_and_docs_page(app, acme):
    spec = acme.client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    doc = spec.get_json()
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    me = doc["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    token = doc["paths"]["/api/v1/auth/token"]["post"]
    assert "security" not in token and token["requestBody"]
    assert acme.client.get("/api/docs").status_code == 200


# Hour-long windows: the sliding-window counter is exact inside one window, and a test of a
# few seconds straddling an hour boundary is far less likely than one straddling a minute.
@pytest.fixture
def limited_app(migrated):
    extra = {**migrated.extra, "ALBEDO_RATE_LIMIT_AUTH": "5/hour",
             "ALBEDO_RATE_LIMIT_IP": "1000/minute"}
    return create_app(migrated.with_overrides(extra=extra))


def test_auth_limit_trips_exactly_at_the_configured_count(limited_app, acme):
    client = limited_app.test_client()
    statuses = [client.post("/api/v1/auth/token", headers={"Host": "acme.localhost"}, json={
        "email": f"nobody{i}@example.com", "password": "wrong password"}).status_code
        for i in range(6)]
    assert statuses == [401] * 5 + [429]
    last = client.post("/api/v1/auth/token", headers={"Host": "acme.localhost"},
                       json={"email": "x@example.com", "password": "y"})
    _assert_envelope(last)
    assert last.get_json()["error"]["code"] == "rate_limited"
    assert int(last.headers["Retry-After"]) > 0
    assert last.headers["X-RateLimit-Limit"] == "5"
    assert last.headers["X-RateLimit-Remaining"] == "0"
    # Retry-After only where it means "wait": not on the failed sign-ins before the limit.
    first = limited_app.test_client().get("/api/v1/agents", headers={"Host": "acme.localhost"})
    assert first.status_code == 401 and "X-RateLimit-Limit" in first.headers
    assert "Retry-After" not in first.headers


def _hammer(settings, count, queue):
    app = create_app(settings)
    client = app.test_client()
    codes = [client.get("/api/v1/tenant", headers={"Host": "acme.localhost"}).status_code
             for _ in range(count)]
    queue.put(codes)


def test_limits_are_shared_by_several_processes(migrated, acme):
    import multiprocessing

    settings = migrated.with_overrides(
        extra={**migrated.extra, "ALBEDO_RATE_LIMIT_IP": "12/hour"})
    create_app(settings)  # starts the embedded Redis before the processes share it
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_hammer, args=(settings, 6, queue)) for _ in range(3)]
    for w in workers:
        w.start()
    codes = [c for _ in workers for c in queue.get(timeout=60)]
    for w in workers:
        w.join(timeout=30)
    assert codes.count(200) == 12 and codes.count(429) == 6


def test_with_redis_down_limits_fall_back_to_each_process(migrated, acme):
    extra = {**migrated.extra, "ALBEDO_RATE_LIMIT_IP": "3/hour"}
    app = create_app(migrated.with_overrides(redis_url="redis://127.0.0.1:1/0", extra=extra))
    client = app.test_client()
    codes = [client.get("/api/v1/tenant", headers={"Host": "acme.localhost"}).status_code
             for _ in range(4)]
    # Served while Redis is down (no outage of the API), and still limited in this process.
    assert codes == [200, 200, 200, 429]
