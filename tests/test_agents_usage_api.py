"""GET /api/v1/agents/usage: totals per UTC day, grouped, scoped to the caller, per tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app import clock
from tenants.context import activate
from tests.agents_support import fake, make_agent, make_agents_app  # noqa: F401  (fixtures)
from tests.conftest import host_client

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
URL = "/api/v1/agents/usage"


def _execution(application, site, agent_id, user_id, when, tokens, cost, *,
               api_key_id=None, license_id=None):
    """A finished execution with provider-reported usage, recorded at ``when``."""
    from app.agents.models import AgentVersion, Execution
    from app.extensions import db

    with application.app_context(), activate(site.info):
        version = db.session.query(AgentVersion).filter_by(agent_id=agent_id).one()
        db.session.add(Execution(
            agent_id=agent_id, version_id=version.id, version_number=1, model=version.model,
            caller_user_id=user_id, api_key_id=api_key_id, license_id=license_id,
            input="hi", output="hello", status="succeeded", prompt_tokens=tokens[0],
            completion_tokens=tokens[1], cost_micros=cost, created_at=when,
            finished_at=when))
        db.session.commit()


@pytest.fixture
def world(make_agents_app, acme, globex, api_caller):
    """Look-alike usage in two tenants: Acme's customers Ann and Bob, and Globex's Gus."""
    application = make_agents_app()
    reseller = api_caller(acme, role="RESELLER", email="owner@acme.example")
    ann = api_caller(acme, email="ann@example.com")
    bob = api_caller(acme, email="bob@example.com")
    globex_reseller = api_caller(globex, role="RESELLER", email="owner@acme.example")
    gus = api_caller(globex, email="ann@example.com")
    anns_agent = make_agent(application, acme, ann.user_id, slug="helper")
    template = make_agent(application, acme, reseller.user_id, role="RESELLER", slug="tpl")
    gus_agent = make_agent(application, globex, gus.user_id, slug="helper")
    license_id = uuid.uuid4()
    _execution(application, acme, anns_agent, ann.user_id, datetime(2026, 11, 20, 10, 0,
               tzinfo=UTC), (10, 5), 100, api_key_id=ann.key_id)
    _execution(application, acme, anns_agent, ann.user_id, datetime(2026, 11, 19, 23, 59,
               tzinfo=UTC), (20, 10), 200)
    _execution(application, acme, anns_agent, ann.user_id, datetime(2026, 11, 13, 0, 0,
               tzinfo=UTC), (7, 7), 7)  # the first day of an 8-day window
    _execution(application, acme, template, bob.user_id, datetime(2026, 11, 20, 9, 0,
               tzinfo=UTC), (1, 2), 3, license_id=license_id)
    _execution(application, globex, gus_agent, gus.user_id, datetime(2026, 11, 20, 11, 0,
               tzinfo=UTC), (1000, 1000), 1000)
    clock.set_clock(lambda: NOW)
    return {"app": application, "acme": host_client(application, acme.host),
            "globex": host_client(application, globex.host), "reseller": reseller, "ann": ann,
            "bob": bob, "gus": gus, "globex_reseller": globex_reseller,
            "anns_agent": str(anns_agent), "template": str(template),
            "gus_agent": str(gus_agent), "license_id": str(license_id)}


def _get(client, caller, **query):
    response = client.get(URL, headers=caller.headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _rows(body):
    # A customer's report has no costs (the provider's price is the reseller's business).
    return [(row["day"], row["key"], row["executions"], row["total_tokens"],
             row.get("cost_micros")) for row in body["items"]]


def test_a_customer_sees_only_its_own_usage_per_day(world):
    ann, acme = world["ann"], world["acme"]
    body = _get(acme, ann)
    assert (body["group_by"], body["days"]) == ("tenant", 30) and "currency" not in body
    assert (body["since"], body["until"]) == ("2026-10-22", "2026-11-20")
    # Bob's execution of the template is his, not Ann's; Globex's never shows.
    assert _rows(body) == [("2026-11-13", None, 1, 14, None), ("2026-11-19", None, 1, 30, None),
                           ("2026-11-20", None, 1, 15, None)]
    assert body["items"][-1]["prompt_tokens"] == 10
    assert body["items"][-1]["completion_tokens"] == 5
    assert body["totals"] == {"executions": 3, "prompt_tokens": 37, "completion_tokens": 22,
                              "total_tokens": 59}
    per_customer = _get(acme, ann, group_by="customer")
    assert {row["key"] for row in per_customer["items"]} == {str(ann.user_id)}
    per_key = _get(acme, ann, group_by="api_key", days=1)
    assert _rows(per_key) == [("2026-11-20", str(ann.key_id), 1, 15, None)]


def test_the_window_is_whole_utc_days_ending_today(world):
    ann, acme = world["ann"], world["acme"]
    seven = _get(acme, ann, days=7)
    assert seven["since"] == "2026-11-14" and seven["totals"]["executions"] == 2
    eight = _get(acme, ann, days=8)
    assert eight["since"] == "2026-11-13" and eight["totals"]["executions"] == 3
    today = _get(acme, ann, days=1)
    assert [row["day"] for row in today["items"]] == ["2026-11-20"]  # 23:59 yesterday is out


def test_a_reseller_sees_its_whole_tenant_per_customer_key_license_and_agent(world):
    reseller, acme = world["reseller"], world["acme"]
    ann, bob = world["ann"], world["bob"]
    tenant = _get(acme, reseller, days=1)
    assert _rows(tenant) == [("2026-11-20", None, 2, 18, 103)]
    customers = _get(acme, reseller, group_by="customer", days=1)
    assert sorted(_rows(customers)) == sorted([("2026-11-20", str(ann.user_id), 1, 15, 100),
                                               ("2026-11-20", str(bob.user_id), 1, 3, 3)])
    licenses = _get(acme, reseller, group_by="license", days=1)
    assert sorted(_rows(licenses), key=str) == sorted(
        [("2026-11-20", None, 1, 15, 100), ("2026-11-20", world["license_id"], 1, 3, 3)],
        key=str)
    agents = _get(acme, reseller, group_by="agent")
    assert {row["key"]: row["executions"] for row in agents["items"]
            if row["day"] == "2026-11-20"} == {world["anns_agent"]: 1, world["template"]: 1}
    only_bob = _get(acme, reseller, customer_id=str(bob.user_id))
    assert _rows(only_bob) == [("2026-11-20", None, 1, 3, 3)]
    only_template = _get(acme, reseller, agent_id=world["template"])
    assert only_template["totals"]["executions"] == 1
    assert _get(acme, reseller)["totals"]["cost_micros"] == 310  # no Globex money in it


def test_another_tenant_never_sees_acme_usage_nor_queries_its_ids(world):
    gus, globex_reseller, globex = world["gus"], world["globex_reseller"], world["globex"]
    ann, acme = world["ann"], world["acme"]
    for caller, cost in ((gus, None), (globex_reseller, 1000)):
        body = _get(globex, caller, group_by="customer")
        assert _rows(body) == [("2026-11-20", str(gus.user_id), 1, 2000, cost)]
    # Acme's agent and customer ids answer exactly like ids that exist nowhere.
    for query, code in ((("agent_id", world["anns_agent"]), "agent_not_found"),
                        (("customer_id", str(ann.user_id)), "customer_not_found")):
        for value in (query[1], str(uuid.uuid4())):
            response = globex.get(URL, headers=globex_reseller.headers,
                                  query_string={query[0]: value})
            assert response.status_code == 404
            assert response.get_json()["error"]["code"] == code
    # Inside Acme, a customer cannot ask for another customer's usage either.
    bobs = acme.get(URL, headers=ann.headers,
                    query_string={"customer_id": str(world["bob"].user_id)})
    assert bobs.status_code == 404 and bobs.get_json()["error"]["code"] == "customer_not_found"
    assert _get(acme, ann, customer_id=str(ann.user_id))["totals"]["executions"] == 3
    # Nor can an Acme API key read usage on Globex's domain.
    assert globex.get(URL, headers=ann.headers).status_code == 401


@pytest.mark.parametrize("query", [{"days": "0"}, {"days": "91"}, {"days": "week"},
                                   {"group_by": "planet"}, {"agent_id": "nope"}])
def test_bad_query_values_are_a_422_envelope(world, query):
    response = world["acme"].get(URL, headers=world["ann"].headers, query_string=query)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_failed" and set(query) <= set(error["details"]["fields"])


def test_usage_needs_the_read_scope_and_is_documented(world, acme, api_caller):
    writer = api_caller(acme, scopes=["agents:write"], email="ann@example.com")
    denied = world["acme"].get(URL, headers=writer.headers)
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == (
        "insufficient_scope")
    spec = world["acme"].get("/api/v1/openapi.json").get_json()
    operation = spec["paths"][URL]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"group_by", "days", "agent_id",
                                                            "customer_id"}
    assert operation["security"] == [{"bearerAuth": ["agents:read"]}]
