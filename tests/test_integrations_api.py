"""The webhooks API and REST hooks, through HTTP with API keys, always with two tenants."""

from __future__ import annotations

import json

import pytest

from tests.conftest import host_client
from tests.fakes.receiver import start_receiver
from tests.fakes.webhooks import ControlledClock, app_allowing, drain

LICENSE = {"license_id": "lic-1", "status": "active"}


@pytest.fixture
def receiver():
    r = start_receiver()
    yield r
    r.close()


@pytest.fixture
def hooks_app(app, migrated, receiver):
    with app_allowing(migrated, receiver.port) as application:
        yield application


def _client(application, site):
    return host_client(application, site.host)


def _emit(application, site, event="license.created", data=None, owner=None):
    from app.extensions import db
    from app.integrations.events import emit
    from tenants.context import activate

    with application.app_context(), activate(site.info):
        row = emit(event, data or LICENSE, owner_user_id=owner)
        db.session.commit()
        return row.public_id


def test_endpoints_crud_is_scoped_to_the_tenant_and_the_owner(
        hooks_app, acme, globex, api_caller, receiver):
    ann = api_caller(acme, "USER", email="ann@example.com")
    bob = api_caller(acme, "USER", email="bob@example.com")
    team = api_caller(acme, "RESELLER", email="team@example.com")
    globex_ann = api_caller(globex, "USER", email="ann@example.com")
    acme_http, globex_http = _client(hooks_app, acme), _client(hooks_app, globex)

    created = acme_http.post("/api/v1/webhooks/endpoints", headers=ann.headers, json={
        "url": receiver.url("/ann"), "event_types": ["license.created"], "description": "CRM"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["secret"].startswith("whsec_") and body["owner_user_id"] == str(ann.user_id)
    endpoint_id = body["id"]
    globex_http.post("/api/v1/webhooks/endpoints", headers=globex_ann.headers,
                     json={"url": receiver.url("/globex")})

    def ids(client, caller):
        answer = client.get("/api/v1/webhooks/endpoints", headers=caller.headers)
        assert answer.status_code == 200
        return [e["id"] for e in answer.get_json()["items"]]

    assert ids(acme_http, ann) == [endpoint_id]
    assert ids(acme_http, bob) == []
    assert ids(acme_http, team) == [endpoint_id]
    assert endpoint_id not in ids(globex_http, globex_ann) and len(ids(globex_http,
                                                                       globex_ann)) == 1
    for client, caller in ((acme_http, bob), (globex_http, globex_ann)):
        for method, path in (("get", ""), ("patch", ""), ("delete", ""), ("get", "/secret"),
                             ("post", "/test"), ("post", "/rotate-secret")):
            answer = getattr(client, method)(f"/api/v1/webhooks/endpoints/{endpoint_id}{path}",
                                             headers=caller.headers, json={})
            assert answer.status_code == 404, (method, path)
            assert answer.get_json()["error"]["code"] == "not_found"

    secret = acme_http.get(f"/api/v1/webhooks/endpoints/{endpoint_id}/secret",
                           headers=ann.headers).get_json()["secret"]
    assert secret == body["secret"]
    rotated = acme_http.post(f"/api/v1/webhooks/endpoints/{endpoint_id}/rotate-secret",
                             headers=ann.headers, json={"overlap_seconds": 600}).get_json()
    assert rotated["secret"] != secret and rotated["previous_secret_expires_at"]
    patched = acme_http.patch(f"/api/v1/webhooks/endpoints/{endpoint_id}", headers=ann.headers,
                              json={"enabled": False})
    assert patched.get_json()["enabled"] is False
    assert acme_http.delete(f"/api/v1/webhooks/endpoints/{endpoint_id}",
                            headers=team.headers).status_code == 204
    assert ids(acme_http, ann) == []
    assert len(ids(globex_http, globex_ann)) == 1


def test_clear_errors(app, acme, api_caller):
    team = api_caller(acme, "RESELLER")
    no_scope = api_caller(acme, "RESELLER", scopes=["agents:read"])
    http = acme.client
    cases = [
        (http.post("/api/v1/webhooks/endpoints", headers=team.headers,
                   json={"url": "http://169.254.169.254/latest"}), 422, "url_not_allowed"),
        (http.post("/api/v1/webhooks/endpoints", headers=team.headers,
                   json={"url": "https://example.com/x", "event_types": ["nope"]}), 422,
         "validation_failed"),
        (http.post("/api/v1/hooks", headers=team.headers,
                   json={"target_url": "http://127.0.0.1:1/", "event": "license.created"}),
         422, "url_not_allowed"),
        (http.get("/api/v1/hooks/samples/license.exploded", headers=team.headers), 422,
         "unknown_event_type"),
        (http.get("/api/v1/webhooks/endpoints"), 401, "unauthenticated"),
        (http.get("/api/v1/webhooks/endpoints", headers=no_scope.headers), 403,
         "insufficient_scope"),
        (http.get("/api/v1/webhooks/deliveries/not-an-id", headers=team.headers), 404,
         "not_found"),
        (http.post("/api/v1/webhooks/endpoints/rotate", headers=team.headers, json={}), 405,
         "method_not_allowed"),
    ]
    for answer, status, code in cases:
        assert (answer.status_code, answer.get_json()["error"]["code"]) == (status, code)


def test_deliveries_log_attempts_replay_and_test_event(hooks_app, acme, globex, api_caller,
                                                       receiver):
    ControlledClock()
    team = api_caller(acme, "RESELLER")
    globex_team = api_caller(globex, "RESELLER")
    http = _client(hooks_app, acme)
    endpoint_id = http.post("/api/v1/webhooks/endpoints", headers=team.headers,
                            json={"url": receiver.url()}).get_json()["id"]
    receiver.script = [(400, {}, b"bad signature?")]
    for n in range(3):
        _emit(hooks_app, acme, data={**LICENSE, "license_id": f"lic-{n}"})
    drain(hooks_app)

    first = http.get("/api/v1/webhooks/deliveries?limit=2", headers=team.headers).get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = http.get(f"/api/v1/webhooks/deliveries?limit=2&cursor={first['next_cursor']}",
                    headers=team.headers).get_json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    ids = [d["id"] for d in first["items"] + rest["items"]]
    assert len(set(ids)) == 3
    # Another tenant's cursor and ids are refused there.
    globex_http = _client(hooks_app, globex)
    assert globex_http.get(f"/api/v1/webhooks/deliveries?cursor={first['next_cursor']}",
                           headers=globex_team.headers).status_code == 400
    assert globex_http.get(f"/api/v1/webhooks/deliveries/{ids[0]}",
                           headers=globex_team.headers).status_code == 404
    assert globex_http.get("/api/v1/webhooks/deliveries",
                           headers=globex_team.headers).get_json()["items"] == []

    detail = http.get(f"/api/v1/webhooks/deliveries/{ids[0]}", headers=team.headers).get_json()
    assert detail["status"] == "pending" and detail["attempts"][0]["status_code"] == 400
    assert detail["attempts"][0]["response_excerpt"] == "bad signature?"
    assert detail["payload"]["type"] == "license.created"
    conflict = http.post(f"/api/v1/webhooks/deliveries/{ids[0]}/replay", headers=team.headers)
    assert conflict.status_code == 409

    # Make one fail for good, then replay it: same webhook-id, one more attempt, delivered.
    from app.extensions import db
    from app.integrations.models import WebhookDelivery
    from tenants.context import activate

    with hooks_app.app_context(), activate(acme.info):
        row = db.session.get(WebhookDelivery, __import__("uuid").UUID(ids[0]))
        row.status, row.next_attempt_at = "failed", None
        db.session.commit()
    receiver.script = [(200, {}, b"ok")]
    before = len(receiver.requests)
    replayed = http.post(f"/api/v1/webhooks/deliveries/{ids[0]}/replay", headers=team.headers)
    assert replayed.status_code == 202
    drain(hooks_app)
    sent = receiver.requests[before:]
    assert [r.headers["webhook-id"] for r in sent] == [detail["webhook_id"]]
    done = http.get(f"/api/v1/webhooks/deliveries/{ids[0]}", headers=team.headers).get_json()
    assert done["status"] == "succeeded" and len(done["attempts"]) == 2

    tested = http.post(f"/api/v1/webhooks/endpoints/{endpoint_id}/test", headers=team.headers)
    assert tested.status_code == 202
    drain(hooks_app)
    assert json.loads(receiver.requests[-1].body)["type"] == "webhook.test"
    # A test event is never offered as a sample.
    samples = http.get("/api/v1/hooks/samples/license.created", headers=team.headers)
    assert all(s["type"] == "license.created" for s in samples.get_json())


def test_zapier_subscribe_event_unsubscribe(hooks_app, acme, globex, api_caller, receiver):
    zap = api_caller(acme, "RESELLER", scopes=["webhooks:manage"])
    globex_zap = api_caller(globex, "RESELLER", scopes=["webhooks:manage"])
    http, globex_http = _client(hooks_app, acme), _client(hooks_app, globex)
    assert http.get("/api/v1/me", headers=zap.headers).status_code == 200  # connection test

    subscribed = http.post("/api/v1/hooks", headers=zap.headers, json={
        "target_url": receiver.url("/zap"), "event": "license.created"})
    assert subscribed.status_code == 201
    hook_id = subscribed.get_json()["id"]
    assert globex_http.delete(f"/api/v1/hooks/{hook_id}",
                              headers=globex_zap.headers).status_code == 404

    first = _emit(hooks_app, acme, data={**LICENSE, "license_id": "first"})
    _emit(hooks_app, acme, event="license.revoked")  # another event: not subscribed
    _emit(hooks_app, globex, data={**LICENSE, "license_id": "globex"})
    second = _emit(hooks_app, acme, data={**LICENSE, "license_id": "second"})
    drain(hooks_app)
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [(b["id"], b["data"]["license_id"]) for b in bodies] == [
        (first, "first"), (second, "second")]
    assert all(r.path == "/zap" for r in receiver.requests)

    samples = http.get("/api/v1/hooks/samples/license.created", headers=zap.headers).get_json()
    assert [s["id"] for s in samples] == [second, first]  # newest first, unique ids
    assert [s["data"]["license_id"] for s in samples] == ["second", "first"]
    assert globex_http.get("/api/v1/hooks/samples/license.created",
                           headers=globex_zap.headers).get_json()[0]["data"]["license_id"] \
        == "globex"

    assert http.delete(f"/api/v1/hooks/{hook_id}", headers=zap.headers).status_code == 204
    _emit(hooks_app, acme, data={**LICENSE, "license_id": "after"})
    drain(hooks_app)
    assert len(receiver.requests) == 2
    assert http.delete(f"/api/v1/hooks/{hook_id}", headers=zap.headers).status_code == 404


def test_a_410_from_a_hook_target_deletes_the_subscription(hooks_app, acme, api_caller,
                                                          receiver):
    zap = api_caller(acme, "USER")
    http = _client(hooks_app, acme)
    receiver.script = [(410, {}, b"")]
    http.post("/api/v1/hooks", headers=zap.headers,
              json={"target_url": receiver.url(), "event": "execution.succeeded"})
    assert len(http.get("/api/v1/hooks", headers=zap.headers).get_json()) == 1
    data = {"execution_id": "e1", "agent_id": "a1"}
    _emit(hooks_app, acme, "execution.succeeded", data, owner=zap.user_id)
    drain(hooks_app)
    assert len(receiver.requests) == 1
    assert http.get("/api/v1/hooks", headers=zap.headers).get_json() == []
    _emit(hooks_app, acme, "execution.succeeded", data, owner=zap.user_id)
    drain(hooks_app)
    assert len(receiver.requests) == 1


def test_a_customers_hook_gets_only_their_own_events(hooks_app, acme, api_caller, receiver):
    ann = api_caller(acme, "USER", email="ann@example.com")
    bob = api_caller(acme, "USER", email="bob@example.com")
    http = _client(hooks_app, acme)
    http.post("/api/v1/hooks", headers=ann.headers,
              json={"target_url": receiver.url("/ann"), "event": "quota.exceeded"})
    for who in (ann, bob):
        _emit(hooks_app, acme, "quota.exceeded", {"user_id": str(who.user_id), "quota": "runs"},
              owner=who.user_id)
    drain(hooks_app)
    assert [json.loads(r.body)["data"]["user_id"] for r in receiver.requests] == [
        str(ann.user_id)]
    bob_samples = http.get("/api/v1/hooks/samples/quota.exceeded", headers=bob.headers)
    assert [s["data"]["user_id"] for s in bob_samples.get_json()] == [str(bob.user_id)]
