"""Remembered answers (app/api/lane/remembered.py): the lane gives a warm read the route's own
last answer while nothing it was read from has changed — on two tenants, per caller — and
refuses to remember an answer whose run shows it may not be."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from app.api.lane import remembered
from app.api.lane import routes as lane_routes
from tests.lane_support import _agent, _same, _token, lane, people  # noqa: F401  (fixtures)


def _remembered(lane, site, path: str, headers: dict) -> dict:
    """The route's answer, then the same from memory, byte for byte the route's."""
    # A cold credential, then counters first seen (a new tenant moved the tenant cache's
    # generation): the route's; then its answer is remembered, and given from memory.
    for _ in range(4):
        before = lane.answered
        fast = site.client.get(path, headers=headers)
        if lane.answered == before + 1:
            break
    assert lane.answered == before + 1, f"{path} was not answered from memory"
    with lane.off():
        reference = site.client.get(path, headers=headers)
    _same(fast, reference)
    return fast.get_json()


def _numbers(answer: dict) -> list[int]:
    return [item["number"] for item in answer["items"]]


def test_an_answer_is_given_again_until_a_change_moves_its_counter(
        lane, acme, globex, people):
    callers, agents = people
    ann_agent, gus_agent = agents["ann"][0], agents["gus"][0]
    versions = f"/api/v1/agents/{ann_agent}/versions"
    for site, agent, who in ((acme, ann_agent, "ann"), (globex, gus_agent, "gus")):
        made = site.client.post(f"/api/v1/agents/{agent}/versions", headers=callers[who],
                                json={"system_prompt": "v1"})
        assert made.status_code == 201, made.get_data(as_text=True)
    first = _remembered(lane, acme, versions, callers["ann"])
    assert _numbers(first) == [1]
    # The reseller's answer is its own (it sees the model); the other tenant's, its own.
    assert _remembered(lane, acme, versions, callers["reseller"])["items"][0]["model"]
    assert "model" not in first["items"][0]
    gus = _remembered(lane, globex, f"/api/v1/agents/{gus_agent}/versions", callers["gus"])
    assert {item["id"] for item in gus["items"]}.isdisjoint(
        {item["id"] for item in first["items"]})
    # Another customer's agent, and an agent of the other tenant: the route's 404, never
    # remembered.
    for site, path, who in ((acme, versions, "bob"),
                            (globex, versions, "gus")):
        before = lane.answered
        for _ in range(3):
            assert site.client.get(path, headers=callers[who]).status_code == 404
        assert lane.answered == before

    made = acme.client.post(versions, headers=callers["ann"], json={"system_prompt": "v2"})
    assert made.status_code == 201, made.get_data(as_text=True)
    before = lane.answered
    fresh = acme.client.get(versions, headers=callers["ann"]).get_json()
    assert lane.answered == before  # the moved counter sent it to the route
    assert _numbers(fresh) == [made.get_json()["number"], *_numbers(first)]
    assert _remembered(lane, acme, versions, callers["ann"]) == fresh
    # A change on acme leaves globex's remembered answer standing.
    before = lane.answered
    assert globex.client.get(f"/api/v1/agents/{gus_agent}/versions",
                             headers=callers["gus"]).get_json() == gus
    assert lane.answered == before + 1


def test_a_conditional_request_and_an_unknown_path_are_the_routes(
        lane, acme, people):
    callers, _agents = people
    _remembered(lane, acme, "/api/v1/executions", callers["ann"])
    before = lane.answered
    conditional = acme.client.get("/api/v1/executions", headers={
        **callers["ann"], "If-None-Match": '"x"'})
    assert conditional.status_code == 200 and lane.answered == before
    missing = acme.client.get("/api/v1/webhooks/endpoints/nope", headers=callers["reseller"])
    missing = acme.client.get("/api/v1/webhooks/endpoints/nope", headers=callers["reseller"])
    assert missing.status_code == 404 and lane.answered == before
    assert set(missing.get_json()) == {"error"}


def test_an_answer_that_read_an_undeclared_table_is_not_remembered(
        lane, acme, people, monkeypatch, caplog):
    callers, _agents = people
    rule = "/api/v1/executions"
    route = lane_routes._ROUTES[rule]
    monkeypatch.setitem(lane_routes._ROUTES, rule, lane_routes.LaneRoute(
        **{**route.__dict__, "tables": ("agent_versions",)}))
    caplog.set_level(logging.WARNING, "app.api.lane.remembered")
    for _ in range(3):
        assert acme.client.get(rule, headers=callers["ann"]).status_code == 200
    before = lane.answered
    assert acme.client.get(rule, headers=callers["ann"]).status_code == 200
    assert lane.answered == before
    assert "it read tables it does not declare: ['agent_executions']" in caplog.text


def test_a_statement_that_writes_or_cannot_be_read_is_recorded_as_a_refusal(app, acme):
    from app.extensions import db
    from tenants.models import Tenant

    for run in ("text", "write"):
        recording = remembered.Recording()
        with app.app_context():
            reset = remembered._RECORDING.set(recording)
            try:
                if run == "text":
                    db.session.execute(db.text("SELECT 1")).all()
                else:
                    db.session.get(Tenant, acme.info.id).name = "Acme Written"
                    db.session.commit()
            finally:
                remembered._RECORDING.reset(reset)
        assert recording.refused and "other than a readable SELECT" in recording.refused, run


def test_an_invitation_is_remembered_until_it_expires(lane, acme, globex, api_caller, at):
    # API keys: an access token would expire long before the invitation.
    reseller = api_caller(acme, role="RESELLER").headers
    outsider = api_caller(globex, role="RESELLER").headers
    at(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    made = acme.client.post("/api/v1/invitations", headers=reseller,
                            json={"email": "new@example.com", "role": "USER"})
    assert made.status_code == 201, made.get_data(as_text=True)
    invitation = made.get_json()
    path = f"/api/v1/invitations/{invitation['id']}"
    assert _remembered(lane, acme, path, reseller)["state"] == "pending"
    expires = datetime.fromisoformat(invitation["expires_at"])
    at(expires - timedelta(seconds=1))
    before = lane.answered
    assert acme.client.get(path, headers=reseller).get_json()["state"] == "pending"
    assert lane.answered == before + 1
    at(expires)
    answer = acme.client.get(path, headers=reseller).get_json()
    assert answer["state"] == "expired" and lane.answered == before + 1
    # Another tenant's reseller cannot reach it, remembered or not.
    for _ in range(3):
        assert globex.client.get(path, headers=outsider).status_code == 404


def test_api_key_answers_stand_one_second_at_most(lane, acme, people, at):
    callers, _agents = people
    start = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    at(start)
    _remembered(lane, acme, "/api/v1/api-keys", callers["ann"])
    before = lane.answered
    at(start + timedelta(seconds=2))
    assert acme.client.get("/api/v1/api-keys", headers=callers["ann"]).status_code == 200
    assert lane.answered == before


def test_the_operators_view_of_resellers_follows_a_change_in_any_tenant(
        lane, app, platform, acme, globex, make_user):
    from app.extensions import db
    from tenants.models import Tenant

    make_user(platform, "operator@platform.example", role="ADMIN")
    operator = _token(platform, "operator@platform.example")
    path = f"/api/v1/platform/resellers/{acme.info.id}"
    assert _remembered(lane, platform, path, operator)["name"] == "Acme Agents"
    with app.app_context():
        db.session.get(Tenant, acme.info.id).name = "Acme Renamed"
        db.session.commit()
    assert platform.client.get(path, headers=operator).get_json()["name"] == "Acme Renamed"


def test_every_remembered_read_is_declared_on_a_guarded_get_route(app):
    declared = {spec.rule: spec for spec in remembered.declared()}
    assert len(declared) >= 40
    for rule, spec in declared.items():
        route = lane_routes._ROUTES[rule]
        assert route.remember is spec and route.endpoint
        assert set(spec.tables) <= set(app.extensions["migrate"].db.metadata.tables), rule
    # Secrets and downloads stay out.
    assert not {"/api/v1/webhooks/endpoints/<endpoint_id>/secret",
                "/api/v1/billing/ledger.csv",
                "/api/v1/licenses/bulk/<uuid:bulk_id>/licenses.csv"} & set(declared)


def test_clock_boundaries():
    from app import clock

    assert clock.next_day(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC)
    assert clock.next_month(datetime(2026, 12, 2, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC)
    assert clock.next_month(datetime(2026, 1, 31, 5, tzinfo=UTC)) == datetime(
        2026, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize("fields, expected", [
    ((), None),
    (("expires_at",), "2026-12-02T13:00:00+00:00"),
])
def test_an_answer_stands_until_its_earliest_expiry_still_to_come(at, fields, expected):
    at(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    body = (b'{"items": [{"expires_at": "2026-12-02T11:00:00+00:00"}, '
            b'{"expires_at": "2026-12-02T14:00:00+00:00"}, {"x": {"expires_at": '
            b'"2026-12-02T13:00:00+00:00"}}]}')
    spec = remembered.Declared("/x", ("t",), frozenset(fields), None, None, frozenset())
    until = remembered._fresh_until(body, spec, datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    assert until == (datetime.fromisoformat(expected).timestamp() if expected else None)
    if fields:
        # Read from 10:30 on, while the clock passed 11:00: the 11:00 expiry still ends it
        # (already past: such an answer is never given from memory).
        read_from = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
        assert remembered._fresh_until(body, spec, read_from) == datetime(
            2026, 12, 2, 11, 0, tzinfo=UTC).timestamp()
