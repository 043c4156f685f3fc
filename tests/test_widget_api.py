"""Widget keys and tokens, with two tenants holding look-alike data (same emails, slugs and
origins): keys, exchange, CORS, origin binding, expiry, revocation, caps, limits, attribution
and the visitor's conversation across page loads."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from app import clock
from app.agents.models import Execution
from app.extensions import db
from app.widget.models import WidgetExecution
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agents_app,
    run_agents_worker,
)
from tests.conftest import host_client
from tests.widget_support import (
    ORIGIN,
    VISITOR,
    answer_text,
    chat,
    embed,
    events_of,
    make_widget,
    token_for,
)


def _pair(make_agents_app, acme, globex, api_caller, **settings):
    application = make_agents_app(**settings)
    sites = []
    for site in (acme, globex):
        client = host_client(application, site.host)
        caller = api_caller(site, email="ann@example.com")
        sites.append((client, caller, make_widget(client, caller.headers)))
    return application, sites


def test_keys_are_their_owners_and_never_cross_tenants(make_agents_app, acme, globex,
                                                       api_caller):
    _application, [(a, ann, key), (g, gus, _other)] = _pair(make_agents_app, acme, globex,
                                                          api_caller)
    assert key["key"].startswith("pk_") and key["allowed_origins"] == [ORIGIN]
    assert f'src="http://{acme.host}:5000/widget.js"' in key["snippet"]
    assert f'data-key="{key["key"]}"' in key["snippet"]
    # Each tenant lists only its own, and cannot read, change or revoke the other's.
    assert [k["id"] for k in a.get("/api/v1/widget/keys", headers=ann.headers)
            .get_json()["items"]] == [key["id"]]
    for call in (g.get, g.patch, g.post):
        path = f"/api/v1/widget/keys/{key['id']}" + ("/revoke" if call == g.post else "")
        answer = call(path, headers=gus.headers, json={"name": "x"} if call == g.patch else None)
        assert answer.status_code == 404
        assert answer.get_json()["error"]["code"] == "widget_key_not_found"
    # Its publishable key is unknown on the other tenant's domain.
    assert token_for(g, key["key"]).status_code == 404

    # Another customer of the same tenant does not see it; the reseller does, and can make
    # one owned by that customer (the customer's usage).
    bob = api_caller(acme, email="bob@example.com")
    assert a.get("/api/v1/widget/keys", headers=bob.headers).get_json()["items"] == []
    assert a.get(f"/api/v1/widget/keys/{key['id']}", headers=bob.headers).status_code == 404
    staff = api_caller(acme, role="RESELLER", email="staff@example.com")
    assert [k["id"] for k in a.get("/api/v1/widget/keys", headers=staff.headers)
            .get_json()["items"]] == [key["id"]]
    template = a.post("/api/v1/agents", headers=staff.headers, json={
        "name": "Desk", "slug": "desk", "version": {"model": "gpt-4o-mini"}}).get_json()
    for_bob = a.post("/api/v1/widget/keys", headers=staff.headers, json={
        "name": "Bob's shop", "agent_id": template["id"], "allowed_origins": [ORIGIN],
        "owner_id": str(bob.user_id)})
    assert for_bob.status_code == 201 and for_bob.get_json()["owner_id"] == str(bob.user_id)
    # A customer cannot make a key for someone else, nor for another customer's agent.
    assert a.post("/api/v1/widget/keys", headers=bob.headers, json={
        "name": "x", "agent_id": key["agent_id"], "allowed_origins": [ORIGIN]}
    ).status_code == 404
    assert a.post("/api/v1/widget/keys", headers=bob.headers, json={
        "name": "x", "agent_id": template["id"], "allowed_origins": [ORIGIN],
        "owner_id": str(ann.user_id)}).status_code == 403


def test_bad_input_is_a_clear_4xx(make_agents_app, acme, globex, api_caller):
    _application, [(a, ann, key), _] = _pair(make_agents_app, acme, globex, api_caller)
    base = {"name": "x", "agent_id": key["agent_id"]}
    for body, field in (({**base, "allowed_origins": ["https://*.example"]}, "allowed_origins"),
                        ({**base, "allowed_origins": ["https://a.example/path"]},
                         "allowed_origins"),
                        ({**base, "allowed_origins": []}, "allowed_origins"),
                        ({**base, "allowed_origins": [ORIGIN], "monthly_cap": 2**31},
                         "monthly_cap"),
                        ({**base, "allowed_origins": [ORIGIN],
                          "appearance": {"primary_color": "red"}}, "primary_color")):
        answer = a.post("/api/v1/widget/keys", headers=ann.headers, json=body)
        assert answer.status_code == 422, body
        assert field in str(answer.get_json()["error"]["details"])
    assert a.post("/api/v1/widget/keys", headers=ann.headers,
                  json={**base, "allowed_origins": [ORIGIN], "surprise": 1}).status_code == 422
    assert token_for(a, key["key"], visitor="short").status_code == 422
    token = token_for(a, key["key"]).get_json()["token"]
    assert a.post(embed(key["key"], "/chat"), headers={
        "Authorization": f"Bearer {token}", "Origin": ORIGIN}, json={"message": ""}
    ).status_code == 422
    # Origins are normalised: case and default ports do not matter.
    changed = a.patch(f"/api/v1/widget/keys/{key['id']}", headers=ann.headers, json={
        "allowed_origins": ["HTTPS://Shop.Example:443", ORIGIN]})
    assert changed.get_json()["allowed_origins"] == ["https://shop.example", ORIGIN]


def test_cors_answers_only_the_keys_origins(make_agents_app, acme, globex, api_caller):
    _application, [(a, _ann, key), (_g, _gus, other)] = _pair(make_agents_app, acme, globex,
                                                            api_caller)
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    allowed = a.options(embed(key["key"], "/chat"), headers={**preflight, "Origin": ORIGIN})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]

    refused = a.options(embed(key["key"], "/chat"),
                        headers={**preflight, "Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    # The other tenant's key, with the same origin, is not this domain's to allow.
    crossed = a.options(embed(other["key"], "/chat"), headers={**preflight, "Origin": ORIGIN})
    assert crossed.status_code == 403 and "Access-Control-Allow-Origin" not in crossed.headers

    config = a.get(embed(key["key"], "/config"), headers={"Origin": ORIGIN})
    assert config.status_code == 200 and config.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert config.get_json()["primary_color"] == "#e11d48"  # acme's branding by default
    assert a.get(embed(key["key"], "/config"),
                 headers={"Origin": "http://evil.example"}).status_code == 403
    exchanged = token_for(a, key["key"])
    assert exchanged.status_code == 200
    assert exchanged.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert exchanged.get_json()["expires_in"] <= 900
    denied = token_for(a, key["key"], origin="http://evil.example")
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == \
        "origin_not_allowed"
    assert token_for(a, key["key"], origin=None).get_json()["error"]["code"] == \
        "origin_required"


def test_a_chat_streams_the_answer_as_the_keys_owner(make_agents_app, acme, globex,
                                                     api_caller):
    application, [(a, ann, key), (g, gus, other)] = _pair(make_agents_app, acme, globex,
                                                          api_caller)
    token = token_for(a, key["key"]).get_json()["token"]
    response = chat(a, key["key"], token, "where is my parcel?")
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    run_agents_worker(application)
    events = events_of(response)
    assert events[0][0] == "execution"
    assert answer_text(events) == "Echo: where is my parcel?"
    assert events[-1] == ("end", {"status": "succeeded"})

    execution_id = uuid.UUID(events[0][1]["execution_id"])
    with application.app_context(), activate(acme.info):
        execution = db.session.get(Execution, execution_id)
        assert execution.caller_user_id == ann.user_id and execution.source == "widget"
        assert execution.api_key_id is None
        link = db.session.scalars(select(WidgetExecution)).one()
        assert (str(link.widget_key_id), link.visitor_id, link.origin) == (
            key["id"], VISITOR, ORIGIN)
    # The owner's usage shows it; the other tenant's owner (same email) has none.
    usage = a.get("/api/v1/agents/usage", headers=ann.headers).get_json()
    assert sum(day["executions"] for day in usage["items"]) == 1
    assert g.get("/api/v1/agents/usage", headers=gus.headers).get_json()["items"] == []
    # The other tenant cannot stream it through its own key.
    other_token = token_for(g, other["key"]).get_json()["token"]
    assert g.get(embed(other["key"], f"/executions/{execution_id}/stream"), headers={
        "Authorization": f"Bearer {other_token}", "Origin": ORIGIN}).status_code == 404


def test_tokens_are_bound_to_origin_key_and_time_and_die_with_the_key(
        make_agents_app, acme, globex, api_caller, at):
    _application, [(a, ann, key), (g, _gus, other)] = _pair(
        make_agents_app, acme, globex, api_caller)
    second_origin = "https://other-shop.example"
    a.patch(f"/api/v1/widget/keys/{key['id']}", headers=ann.headers,
            json={"allowed_origins": [ORIGIN, second_origin]})
    token = token_for(a, key["key"]).get_json()["token"]
    history = embed(key["key"], "/conversation")
    assert a.get(history, headers={"Authorization": f"Bearer {token}",
                                   "Origin": ORIGIN}).status_code == 200
    # Replayed from another page, even one the key allows: refused.
    replay = a.get(history, headers={"Authorization": f"Bearer {token}",
                                     "Origin": second_origin})
    assert replay.status_code == 403 and replay.get_json()["error"]["code"] == "origin_mismatch"
    # On another key of the same tenant, or on the other tenant: refused.
    assert g.get(embed(other["key"], "/conversation"), headers={
        "Authorization": f"Bearer {token}", "Origin": ORIGIN}).status_code == 401

    # Expired: the app clock moves past its lifetime.
    at(clock.now() + timedelta(seconds=901))
    expired = a.get(history, headers={"Authorization": f"Bearer {token}", "Origin": ORIGIN})
    assert expired.status_code == 401 and expired.get_json()["error"]["code"] == "invalid_token"
    at(clock.now())

    fresh = token_for(a, key["key"]).get_json()["token"]
    assert a.post(f"/api/v1/widget/keys/{key['id']}/revoke",
                  headers=ann.headers).status_code == 200
    revoked = chat(a, key["key"], fresh, "still there?")
    assert revoked.status_code == 403
    assert revoked.get_json()["error"]["code"] == "widget_key_revoked"
    assert token_for(a, key["key"]).status_code == 403
    # Revoking one tenant's key leaves the look-alike key of the other working.
    assert token_for(g, other["key"]).status_code == 200


def test_monthly_cap_and_visitor_budget(make_agents_app, acme, globex, api_caller):
    application, [(a, ann, key), (g, _gus, other)] = _pair(
        make_agents_app, acme, globex, api_caller, ALBEDO_WIDGET_RATE_LIMIT_VISITOR="4/minute")
    a.patch(f"/api/v1/widget/keys/{key['id']}", headers=ann.headers, json={"monthly_cap": 1})
    token = token_for(a, key["key"]).get_json()["token"]  # 1st hit of the visitor's budget
    first = chat(a, key["key"], token, "one")  # 2nd
    run_agents_worker(application)
    events_of(first)
    capped = chat(a, key["key"], token, "two")  # 3rd
    assert capped.status_code == 429
    assert capped.get_json()["error"]["code"] == "quota_exceeded"
    assert capped.get_json()["error"]["details"]["scope"] == "widget_key"
    # The same visitor id on the other tenant's look-alike key is counted apart.
    other_token = token_for(g, other["key"]).get_json()["token"]
    assert chat(g, other["key"], other_token, "one").status_code == 200
    assert token_for(a, key["key"]).status_code == 200  # 4th
    limited = token_for(a, key["key"])  # 5th: over 4/minute
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert token_for(a, key["key"], visitor="visitor-0002").status_code == 200


def test_the_conversation_continues_across_page_loads(make_agents_app, acme, globex,
                                                      api_caller):
    application, [(a, _ann, key), _] = _pair(make_agents_app, acme, globex, api_caller)
    first = token_for(a, key["key"]).get_json()["token"]
    opening = chat(a, key["key"], first, "my name is Ann")
    run_agents_worker(application)
    events_of(opening)
    # A new page load: a new token for the same visitor id sees and continues the thread.
    second = token_for(a, key["key"]).get_json()["token"]
    auth = {"Authorization": f"Bearer {second}", "Origin": ORIGIN}
    thread = a.get(embed(key["key"], "/conversation"), headers=auth).get_json()
    assert [(m["role"], m["content"]) for m in thread["messages"]] == [
        ("user", "my name is Ann"), ("assistant", "Echo: my name is Ann")]
    follow_up = chat(a, key["key"], second, "and again")
    run_agents_worker(application)
    assert events_of(follow_up)[0][1]["conversation_id"] == thread["conversation_id"]
    # Another visitor starts empty.
    stranger = token_for(a, key["key"], visitor="visitor-0002").get_json()["token"]
    assert a.get(embed(key["key"], "/conversation"), headers={
        "Authorization": f"Bearer {stranger}", "Origin": ORIGIN}).get_json()["messages"] == []


def test_widget_js_is_served_with_a_content_etag(app, acme):
    answer = acme.client.get("/widget.js")
    assert answer.status_code == 200 and answer.mimetype == "text/javascript"
    assert "attachShadow" in answer.get_data(as_text=True)
    assert "Albedo" not in answer.get_data(as_text=True)
    etag = answer.headers["ETag"]
    assert "max-age" in answer.headers["Cache-Control"]
    assert acme.client.get("/widget.js", headers={"If-None-Match": etag}).status_code == 304


def test_the_widget_api_is_documented(app, acme):
    spec = acme.client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/widget/keys", "/api/v1/widget/keys/{key_id}/revoke",
                 "/api/v1/widget/embed/{key}/token", "/api/v1/widget/embed/{key}/chat"):
        assert path in spec["paths"], path


def test_widget_settings_are_validated():
    import pytest

    from app.widget.config import WidgetConfig, WidgetConfigError

    assert WidgetConfig.from_extra({}).token_seconds == 600
    assert WidgetConfig.from_extra({"ALBEDO_WIDGET_TOKEN_SECONDS": "900"}).token_seconds == 900
    for name, bad in (("ALBEDO_WIDGET_TOKEN_SECONDS", "901"),
                      ("ALBEDO_WIDGET_TOKEN_SECONDS", "0"),
                      ("ALBEDO_WIDGET_RATE_LIMIT_VISITOR", "lots"),
                      ("ALBEDO_WIDGET_MONTHLY_EXECUTIONS", "-1")):
        with pytest.raises(WidgetConfigError, match=name):
            WidgetConfig.from_extra({name: bad})
