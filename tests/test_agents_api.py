"""The agents API through real API keys, scopes, the envelope and cursor pagination."""

from __future__ import annotations

import threading

import pytest

from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
    run_agents_worker,
    wait_until,
)
from tests.conftest import host_client


@pytest.fixture
def setup(make_agents_app, fake, acme, globex, api_caller):
    application = make_agents_app()
    acme_client = host_client(application, acme.host)
    globex_client = host_client(application, globex.host)
    ann = api_caller(acme, email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")  # look-alike customer elsewhere
    return application, acme_client, globex_client, ann, gus


def _create(client, caller, slug="helper", **extra):
    response = client.post("/api/v1/agents", headers=caller.headers,
                           json={"name": slug.title(), "slug": slug, "version": VERSION, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_crud_versions_publish_and_rollback_stay_inside_the_tenant(setup):
    _app, acme_client, globex_client, ann, gus = setup
    agent = _create(acme_client, ann)
    same_slug = _create(globex_client, gus)  # same slug in another tenant: allowed
    assert agent["published_version"] == 1 and same_slug["id"] != agent["id"]
    base = f"/api/v1/agents/{agent['id']}"
    v2 = acme_client.post(f"{base}/versions", headers=ann.headers,
                          json={"model": "gpt-4o", "system_prompt": "Formal."})
    assert v2.status_code == 201 and v2.get_json()["number"] == 2
    assert acme_client.get(base, headers=ann.headers).get_json()["published_version"] == 1
    published = acme_client.post(f"{base}/publish", headers=ann.headers, json={"version": 2})
    assert published.get_json()["published_version"] == 2
    rolled = acme_client.post(f"{base}/publish", headers=ann.headers, json={"version": 1})
    assert rolled.get_json()["published_version"] == 1
    missing = acme_client.post(f"{base}/publish", headers=ann.headers, json={"version": 7})
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == (
        "version_not_found")
    page = acme_client.get(f"{base}/versions?limit=1", headers=ann.headers).get_json()
    assert [v["number"] for v in page["items"]] == [2] and page["next_cursor"]
    rest = acme_client.get(f"{base}/versions?limit=1&cursor={page['next_cursor']}",
                           headers=ann.headers).get_json()
    assert [v["number"] for v in rest["items"]] == [1] and rest["next_cursor"] is None
    one = acme_client.get(f"{base}/versions/1", headers=ann.headers).get_json()
    # A customer reads its agent's settings, never the provider's model.
    assert "model" not in one and one["variables"][0]["name"] == "company"
    assert acme_client.get(f"{base}/versions/x", headers=ann.headers).status_code == 404
    undeclared = acme_client.post(f"{base}/versions", headers=ann.headers,
                                  json={"model": "m", "system_prompt": "Hi {{who}}"})
    assert undeclared.status_code == 422
    assert undeclared.get_json()["error"]["code"] == "undeclared_variable"
    patched = acme_client.patch(base, headers=ann.headers, json={"name": "Renamed"})
    assert patched.get_json()["name"] == "Renamed"
    # The other tenant neither sees nor touches it.
    assert globex_client.get(base, headers=gus.headers).status_code == 404
    assert globex_client.patch(base, headers=gus.headers, json={"name": "x"}).status_code == 404
    assert [a["slug"] for a in globex_client.get("/api/v1/agents", headers=gus.headers)
            .get_json()["items"]] == ["helper"]
    assert globex_client.delete(base, headers=gus.headers).status_code == 404
    assert acme_client.delete(base, headers=ann.headers).status_code == 204
    assert acme_client.get(base, headers=ann.headers).status_code == 404


def test_users_see_own_agents_and_templates_and_scopes_are_enforced(setup, acme, api_caller):
    _app, acme_client, _globex_client, ann, _gus = setup
    bob = api_caller(acme, email="bob@example.com")
    reseller = api_caller(acme, role="RESELLER", email="owner@acme.example")
    reader = api_caller(acme, scopes=["agents:read"], email="ann@example.com")
    mine = _create(acme_client, ann, "mine")
    _create(acme_client, bob, "bobs")
    template = _create(acme_client, reseller, "template")
    assert template["is_template"] is True
    slugs = {a["slug"] for a in acme_client.get("/api/v1/agents", headers=ann.headers)
             .get_json()["items"]}
    assert slugs == {"mine", "template"}
    assert len(acme_client.get("/api/v1/agents", headers=reseller.headers)
               .get_json()["items"]) == 3
    edit = acme_client.patch(f"/api/v1/agents/{template['id']}", headers=ann.headers,
                             json={"name": "mine now"})
    assert edit.status_code == 403
    denied = acme_client.post("/api/v1/agents", headers=reader.headers, json={"name": "x"})
    assert denied.status_code == 403
    assert denied.get_json()["error"]["code"] == "insufficient_scope"
    run = acme_client.post(f"/api/v1/agents/{mine['id']}/executions", headers=reader.headers,
                           json={"input": "hi"})
    assert run.status_code == 403


def test_execution_is_202_then_listed_streamed_and_resumable(setup):
    application, acme_client, globex_client, ann, gus = setup
    agent = _create(acme_client, ann)
    other = _create(globex_client, gus)
    started = acme_client.post(f"/api/v1/agents/{agent['id']}/executions", headers=ann.headers,
                               json={"input": "stream this please"})
    assert started.status_code == 202 and started.get_json()["status"] == "queued"
    execution = started.get_json()
    assert started.headers["Location"].endswith(f"/api/v1/executions/{execution['id']}")
    globex_client.post(f"/api/v1/agents/{other['id']}/executions", headers=gus.headers,
                       json={"input": "not yours"})
    run_agents_worker(application)
    done = acme_client.get(f"/api/v1/executions/{execution['id']}", headers=ann.headers)
    body = done.get_json()
    assert body["status"] == "succeeded" and body["output"] == "Echo: stream this please"
    assert body["usage"]["completion_tokens"] == 4
    # A customer's answer names the agent, never the provider's model or cost.
    assert "cost_micros" not in body["usage"] and "model" not in body
    assert body["timings"]["queue_wait_ms"] is not None and body["version"] == 1
    assert globex_client.get(f"/api/v1/executions/{execution['id']}",
                             headers=gus.headers).status_code == 404

    stream = acme_client.get(f"/api/v1/executions/{execution['id']}/stream",
                             headers=ann.headers)
    assert stream.mimetype == "text/event-stream"
    events = _parse_sse(stream.get_data(as_text=True))
    assert "".join(e["data"]["text"] for e in events if e["event"] == "token") == body["output"]
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "succeeded"
    resumed = acme_client.get(f"/api/v1/executions/{execution['id']}/stream",
                              headers={**ann.headers, "Last-Event-ID": events[2]["id"]})
    assert _parse_sse(resumed.get_data(as_text=True)) == events[3:]

    listed = acme_client.get(f"/api/v1/executions?agent_id={agent['id']}&status=succeeded",
                             headers=ann.headers).get_json()
    assert [e["id"] for e in listed["items"]] == [execution["id"]]
    assert acme_client.get("/api/v1/executions?status=failed",
                           headers=ann.headers).get_json()["items"] == []
    theirs = globex_client.get("/api/v1/executions", headers=gus.headers).get_json()["items"]
    assert [e["input"] for e in theirs] == ["not yours"]


def _parse_sse(text: str) -> list[dict]:
    import json

    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append({"id": fields.get("id"), "event": fields["event"],
                           "data": json.loads(fields["data"])})
    return events


def test_prefer_wait_answers_the_result_and_idempotency_key_returns_the_same_execution(setup):
    application, acme_client, _globex_client, ann, _gus = setup
    agent = _create(acme_client, ann)
    answers = {}

    def call():
        answers["waited"] = acme_client.post(
            f"/api/v1/agents/{agent['id']}/executions", json={"input": "wait for me"},
            headers={**ann.headers, "Prefer": "wait=20", "Idempotency-Key": "order-42"})

    request = threading.Thread(target=call)
    request.start()

    def queued():
        from sqlalchemy import func, select

        from app.agents.models import Execution
        from app.extensions import db
        from tenants.context import cross_tenant

        with application.app_context(), cross_tenant("test waits for the row"):
            return db.session.scalar(select(func.count()).select_from(Execution))

    wait_until(queued, what="the execution to be queued")
    run_agents_worker(application)
    request.join(30)
    waited = answers["waited"]
    assert waited.status_code == 200 and waited.get_json()["output"] == "Echo: wait for me"
    assert waited.headers["Preference-Applied"] == "wait=20"
    again = acme_client.post(f"/api/v1/agents/{agent['id']}/executions",
                             json={"input": "wait for me"},
                             headers={**ann.headers, "Idempotency-Key": "order-42"})
    assert again.get_json()["id"] == waited.get_json()["id"]
    assert len(acme_client.get("/api/v1/executions", headers=ann.headers)
               .get_json()["items"]) == 1


def test_cancel_quota_and_missing_provider_answer_clear_envelopes(
        make_agents_app, fake, acme, api_caller):
    application = make_agents_app(ALBEDO_FREE_PLAN_MONTHLY_EXECUTIONS="1")
    client = host_client(application, acme.host)
    ann = api_caller(acme, email="ann@example.com")
    agent = _create(client, ann)
    started = client.post(f"/api/v1/agents/{agent['id']}/executions", headers=ann.headers,
                          json={"input": "one"}).get_json()
    cancelled = client.post(f"/api/v1/executions/{started['id']}/cancel", headers=ann.headers)
    assert cancelled.get_json()["status"] == "cancelled"
    again = client.post(f"/api/v1/executions/{started['id']}/cancel", headers=ann.headers)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == (
        "execution_finished")
    over = client.post(f"/api/v1/agents/{agent['id']}/executions", headers=ann.headers,
                       json={"input": "two"})
    assert over.status_code == 429 and over.headers["Retry-After"]
    error = over.get_json()["error"]
    assert error["code"] == "quota_exceeded" and error["details"]["limit"] == 1
    assert error["details"]["reset_at"]
    unconfigured = make_agents_app(OPENAI_BASE_URL="", OPENAI_API_KEY="")
    answer = host_client(unconfigured, acme.host).post(
        f"/api/v1/agents/{agent['id']}/executions", headers=ann.headers, json={"input": "x"})
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "provider_not_configured"
