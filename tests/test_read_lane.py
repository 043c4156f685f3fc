"""The read lane (app/api/lane) answers warm reads exactly as the Flask routes do — body,
headers and budgets — and leaves every other request to them, on two tenants and for every
kind of caller."""

from __future__ import annotations

import re
import uuid

import pytest

from app import create_app
from app.api.lane import routes as lane_routes
from app.api.lane.wsgi import ReadLane
from tests.conftest import host_client
from tests.lane_support import Lane, _agent, _same, _token, lane, people  # noqa: F401  (fixtures)


def _compare(lane, site, path: str, headers: dict[str, str]) -> dict:
    site.client.get(path, headers=headers)  # a cold credential is the route's; warms the cache
    before = lane.answered
    fast = site.client.get(path, headers=headers)
    assert lane.answered == before + 1, f"the lane did not answer {path}"
    with lane.off():
        reference = site.client.get(path, headers=headers)
    _same(fast, reference)
    return fast.get_json()


@pytest.mark.parametrize("who", ["reseller", "ann", "ann_key", "ann_read_key", "bob"])
def test_warm_reads_are_answered_exactly_as_the_routes_answer_them(lane, acme, people, who):
    callers, agents = people
    headers = callers[who]
    me = _compare(lane, acme, "/api/v1/me", headers)
    assert me["tenant"]["slug"] == "acme"
    page = _compare(lane, acme, "/api/v1/agents?limit=3", headers)
    assert page["next_cursor"] is not None
    _compare(lane, acme, "/api/v1/agents?limit=3&cursor=" + page["next_cursor"], headers)
    _compare(lane, acme, "/api/v1/agents", headers)
    _compare(lane, acme, f"/api/v1/agents/{agents['template'][0]}", headers)
    own = agents["bob" if who == "bob" else "ann" if who != "reseller" else "template"][-1]
    assert _compare(lane, acme, f"/api/v1/agents/{own}", headers)["id"] == own


def test_pages_walked_through_the_lane_are_the_routes_pages(lane, acme, globex, people):
    callers, agents = people
    everyone = agents["template"] + agents["ann"] + agents["bob"]
    for site, who, expected in ((acme, "ann", agents["ann"] + agents["template"]),
                                (acme, "reseller", everyone), (globex, "gus", agents["gus"])):
        seen, cursor = [], None
        while True:
            path = "/api/v1/agents?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = _compare(lane, site, path, callers[who])
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))


def _without_request_id(body: dict) -> dict:
    if "error" in body:
        body["error"].pop("request_id")
    return body


def _remaining(answer) -> int:
    return int(answer.headers["X-RateLimit-Remaining"])


@pytest.mark.parametrize("case", [
    "another customer's agent", "another tenant's agent", "another tenant's credential",
    "a cursor of another tenant", "a forged cursor", "limit 0", "limit 101", "limit text",
    "a repeated parameter", "an unknown parameter", "a scope the key lacks", "no such path",
])
def test_what_the_lane_does_not_answer_the_route_answers_taking_its_budgets_once(
        lane, app, acme, globex, people, api_caller, case):
    callers, agents = people
    site, headers = acme, callers["ann"]
    gus_page = globex.client.get("/api/v1/agents?limit=1", headers=callers["gus"]).get_json()
    path = {
        "another customer's agent": f"/api/v1/agents/{agents['bob'][0]}",
        "another tenant's agent": f"/api/v1/agents/{agents['gus'][0]}",
        "another tenant's credential": "/api/v1/agents",
        "a cursor of another tenant": "/api/v1/agents?cursor=" + gus_page["next_cursor"],
        "a forged cursor": "/api/v1/agents?cursor=WyJ4Il0.forged",
        "limit 0": "/api/v1/agents?limit=0",
        "limit 101": "/api/v1/agents?limit=101",
        "limit text": "/api/v1/agents?limit=ten",
        "a repeated parameter": "/api/v1/agents?limit=2&limit=3",
        "an unknown parameter": "/api/v1/agents?limit=2&owner=me",
        "a scope the key lacks": "/api/v1/agents",
        "no such path": f"/api/v1/agents/{uuid.uuid4()}/nothing",
    }[case]
    if case == "another tenant's credential":
        headers = callers["gus"]
        site.client.get("/api/v1/me", headers=headers)
    if case == "a scope the key lacks":
        headers = api_caller(acme, email="ann@example.com", scopes=["licenses:read"]).headers
    site.client.get("/api/v1/me", headers=headers)  # warm, where the tenant knows it
    before = site.client.get("/api/v1/me", headers=headers)
    answered = lane.answered
    answer = site.client.get(path, headers=headers)
    assert lane.answered == answered
    with lane.off():
        reference = site.client.get(path, headers=headers)
    assert answer.status_code == reference.status_code
    assert _without_request_id(answer.get_json()) == _without_request_id(reference.get_json())
    if answer.status_code != 200:
        assert answer.status_code in (400, 401, 403, 404, 422)
        assert set(answer.get_json()) == {"error"}  # the envelope
    if "X-RateLimit-Remaining" in answer.headers:  # an unknown path has no budgets
        assert _remaining(answer) == _remaining(before) - 1
        assert _remaining(reference) == _remaining(answer) - 1


def test_a_revoked_key_a_role_change_and_a_suspension_are_seen_at_the_next_request(
        lane, app, acme, people, api_caller):
    from app.auth.models import User
    from app.extensions import db
    from tenants.context import activate
    from tenants.models import Tenant

    callers, _agents = people
    key = api_caller(acme, email="bob@example.com")
    for _ in range(2):
        assert acme.client.get("/api/v1/me", headers=key.headers).status_code == 200
    revoked = acme.client.delete(f"/api/v1/api-keys/{key.key_id}", headers=callers["bob"])
    assert revoked.status_code == 204
    answered = lane.answered
    gone = acme.client.get("/api/v1/me", headers=key.headers)
    assert gone.status_code == 401 and gone.get_json()["error"]["code"] == "unauthenticated"
    assert lane.answered == answered

    ann = callers["ann"]
    for _ in range(2):
        assert acme.client.get("/api/v1/me", headers=ann).get_json()["role"] == "USER"
    with app.app_context(), activate(acme.info):
        user = db.session.scalar(db.select(User).where(User.email == "ann@example.com"))
        user.role = "RESELLER"
        db.session.commit()
    answered = lane.answered
    assert acme.client.get("/api/v1/me", headers=ann).get_json()["role"] == "RESELLER"
    assert lane.answered == answered  # the moved counter sent it to the route
    assert acme.client.get("/api/v1/me", headers=ann).get_json()["role"] == "RESELLER"
    assert lane.answered == answered + 1  # and the route's fresh answer is warm again

    for _ in range(2):
        assert acme.client.get("/api/v1/agents", headers=callers["bob"]).status_code == 200
    with app.app_context():
        db.session.get(Tenant, acme.info.id).status = "suspended"
        db.session.commit()
    answered = lane.answered
    suspended = acme.client.get("/api/v1/agents", headers=callers["bob"])
    assert suspended.status_code == 403
    assert suspended.get_json()["error"]["code"] == "tenant_suspended"
    assert lane.answered == answered


@pytest.fixture
def limited(migrated, acme, people):
    extra = {**migrated.extra, "ALBEDO_RATE_LIMIT_CREDENTIAL": "4/hour"}
    return create_app(migrated.with_overrides(extra=extra))


def test_budgets_are_the_routes_own_and_a_refusal_is_the_routes_envelope(
        limited, monkeypatch, acme, people):
    callers, agents = people
    lane = Lane(limited, monkeypatch)
    client = host_client(limited, acme.host)
    paths = ["/api/v1/me", "/api/v1/agents", f"/api/v1/agents/{agents['ann'][0]}",
             f"/api/v1/agents/{agents['bob'][0]}"]  # the last: not Ann's, the route's 404
    answers = [client.get(path, headers=callers["ann"]) for path in paths]
    assert [a.status_code for a in answers] == [200, 200, 200, 404]
    assert lane.answered == 2  # the first was cold; the 404 is the route's
    refused = client.get("/api/v1/agents", headers=callers["ann"])
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert refused.headers["X-RateLimit-Limit"] == "4"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) > 0
    # Another credential's budget is its own; the lane answers it.
    assert client.get("/api/v1/me", headers=callers["bob"]).status_code == 200
    assert client.get("/api/v1/me", headers=callers["bob"]).status_code == 200
    assert lane.answered == 3


def test_without_redis_the_routes_answer_with_their_fallback(migrated, monkeypatch, acme,
                                                             people):
    callers, _agents = people
    extra = {**migrated.extra, "ALBEDO_RATE_LIMIT_IP": "3/hour"}
    down = create_app(migrated.with_overrides(redis_url="redis://127.0.0.1:1/0", extra=extra))
    lane = Lane(down, monkeypatch)
    client = host_client(down, acme.host)
    codes = [client.get("/api/v1/me", headers=callers["ann"]).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429] and lane.answered == 0


def test_every_lane_read_is_a_get_route_with_the_shared_budgets_only(app, acme):
    from app.api.limits import limiter
    from tenants.context import activate

    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    assert lane_routes.routes()
    for route in lane_routes.routes():
        assert route.rule in rules and "GET" in rules[route.rule].methods, route.rule
        endpoint = rules[route.rule].endpoint
        path = re.sub(r"<uuid:\w+>", str(uuid.uuid4()), route.rule)
        with app.test_request_context(path, headers={"Host": acme.host,
                                                     "Authorization": "Bearer x"}), \
                activate(acme.info):
            limits = limiter._request_limits(None, True)
            assert [lim.scope for lim in limits] == ["ip", "credential", "tenant"], endpoint
            assert all(lim.shared for lim in limits)


def test_the_lane_counts_its_answers_in_the_request_metrics(lane, acme, people):
    from app.ops import metrics

    callers, agents = people

    def count() -> float:
        return metrics.http_requests.labels("/api/v1/agents/<uuid:agent_id>", "GET",
                                            "2xx")._value.get()

    path = f"/api/v1/agents/{agents['ann'][0]}"
    acme.client.get(path, headers=callers["ann"])
    before, answered = count(), lane.answered
    acme.client.get(path, headers=callers["ann"])
    assert lane.answered == answered + 1 and count() == before + 1


def test_switched_off_every_read_is_the_routes(migrated, acme, people):
    callers, _agents = people
    off = create_app(migrated.with_overrides(read_lane=False))
    layers, layer = [], off.wsgi_app
    while layer is not None:
        layers.append(type(layer))
        layer = getattr(layer, "next", None)
    assert ReadLane not in layers
    client = host_client(off, acme.host)
    assert client.get("/api/v1/me", headers=callers["ann"]).status_code == 200


def _fetches(monkeypatch) -> list:
    from app.api.lane.prepared import PreparedRead

    calls: list = []
    original = PreparedRead.fetch

    def counted(read, *args, **kwargs):
        calls.append(read)
        return original(read, *args, **kwargs)

    monkeypatch.setattr(PreparedRead, "fetch", counted)
    return calls


def test_a_remembered_answer_is_served_until_a_change_anywhere_moves_its_counter(
        lane, app, migrated, acme, globex, people, monkeypatch):
    callers, agents = people
    fetches = _fetches(monkeypatch)
    ann, mine = callers["ann"], agents["ann"][0]
    item, page = f"/api/v1/agents/{mine}", "/api/v1/agents?limit=50"
    for path in (item, page, item, page):
        acme.client.get(path, headers=ann)
    answered, read = lane.answered, len(fetches)
    assert acme.client.get(item, headers=ann).get_json()["name"] == "Ann 0"
    assert len(acme.client.get(page, headers=ann).get_json()["items"]) == 11
    assert lane.answered == answered + 2 and len(fetches) == read  # remembered, no query

    other = host_client(create_app(migrated), acme.host)  # another process
    renamed = other.patch(item, headers=ann, json={"name": "Ann renamed"})
    assert renamed.status_code == 200
    assert acme.client.get(item, headers=ann).get_json()["name"] == "Ann renamed"
    names = [a["name"] for a in acme.client.get(page, headers=ann).get_json()["items"]]
    assert "Ann renamed" in names and "Ann 0" not in names
    new = other.post("/api/v1/agents", headers=ann, json={"name": "Ann new"}).get_json()["id"]
    assert new in [a["id"] for a in acme.client.get(page, headers=ann).get_json()["items"]]
    assert other.delete(item, headers=ann).status_code == 204
    assert acme.client.get(item, headers=ann).status_code == 404
    assert mine not in [a["id"] for a in acme.client.get(page, headers=ann).get_json()["items"]]
    # The other tenant's remembered answers did not move: globex changed nothing.
    gus_page = "/api/v1/agents?limit=50"
    for _ in range(2):
        globex.client.get(gus_page, headers=callers["gus"])
    read = len(fetches)
    assert len(globex.client.get(gus_page, headers=callers["gus"]).get_json()["items"]) == 3
    assert len(fetches) == read


def test_rows_gone_by_cascade_or_changed_in_bulk_are_not_served_from_memory(
        lane, app, acme, people):
    from sqlalchemy import update

    from app.agents.models import Agent
    from app.auth.models import User
    from app.extensions import db
    from tenants.context import activate

    callers, agents = people
    page = "/api/v1/agents?limit=50"
    for _ in range(2):
        listed = acme.client.get(page, headers=callers["reseller"]).get_json()["items"]
    assert {a["id"] for a in listed} >= set(agents["bob"])
    with app.app_context(), activate(acme.info):
        db.session.delete(db.session.scalar(db.select(User).where(
            User.email == "bob@example.com")))
        db.session.commit()  # the database deletes Bob's agents with him
    listed = acme.client.get(page, headers=callers["reseller"]).get_json()["items"]
    assert not {a["id"] for a in listed} & set(agents["bob"])

    with app.app_context(), activate(acme.info):
        db.session.execute(update(Agent).where(Agent.name.like("Template%"))
                           .values(description="Changed in bulk"))
        db.session.commit()
    listed = acme.client.get(page, headers=callers["reseller"]).get_json()["items"]
    assert {a["description"] for a in listed if a["name"].startswith("Template")} == {
        "Changed in bulk"}


def test_a_redis_that_lost_its_counters_does_not_vouch_for_remembered_answers(
        lane, app, acme, people, redis_client, owner_engine):
    from sqlalchemy import text

    callers, agents = people
    path = f"/api/v1/agents/{agents['ann'][0]}"
    redis_client.flushdb()  # every counter at zero
    for _ in range(4):
        assert acme.client.get(path, headers=callers["ann"]).get_json()["name"] == "Ann 0"
    # A change nobody was told about (written around the app), then Redis restarts empty:
    # its counters read as they did when the answer was remembered.
    with owner_engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # row-level security binds the owner too
            connection.execute(text("SELECT set_config('app.cross_tenant', 'on', true)"))
        changed = connection.execute(text(
            "UPDATE agents SET name = 'Ann elsewhere' WHERE name = 'Ann 0'"))
        assert changed.rowcount == 1
    redis_client.flushdb()
    # The cached principal does not outlive the epoch either: the route reads it again.
    answered = lane.answered
    assert acme.client.get(path, headers=callers["ann"]).get_json()["name"] == "Ann elsewhere"
    assert lane.answered == answered
    for _ in range(3):
        assert acme.client.get(path, headers=callers["ann"]).get_json()["name"] == (
            "Ann elsewhere")
    assert lane.answered > answered


def test_a_read_that_fails_in_the_lane_is_the_routes_with_its_budgets_taken_once(
        lane, acme, people, monkeypatch, caplog):
    from app.api.lane.prepared import PreparedRead

    callers, agents = people
    path = f"/api/v1/agents/{agents['ann'][1]}"
    warm = [acme.client.get(path, headers=callers["ann"]) for _ in range(2)][-1]

    def broken(*_args, **_kwargs):
        raise RuntimeError("the lane's own bug")

    monkeypatch.setattr(PreparedRead, "fetch", broken)
    monkeypatch.setattr("app.api.lane.freshness.Answers.get", lambda *_args: None)
    answer = acme.client.get(path, headers=callers["ann"])
    assert answer.status_code == 200 and answer.get_json()["id"] == agents["ann"][1]
    assert _remaining(answer) == _remaining(warm) - 1
    assert "read lane failed" in caplog.text


@pytest.fixture
def threads(app, acme, globex, people):
    """Conversations: Ann three with her first agent and two with her second, Bob one, and
    on globex the look-alike two."""
    from app.agents.models import Conversation
    from app.auth.models import User
    from app.extensions import db
    from tenants.context import activate

    _callers, agents = people
    made: dict[str, list[str]] = {}
    for site, email, plan in ((acme, "ann@example.com", [("ann", 0)] * 3 + [("ann", 1)] * 2),
                              (acme, "bob@example.com", [("bob", 0)]),
                              (globex, "ann@example.com", [("gus", 0)] * 2)):
        with app.app_context(), activate(site.info):
            user = db.session.scalar(db.select(User).where(User.email == email))
            rows = [Conversation(agent_id=uuid.UUID(agents[who][n]), user_id=user.id,
                                 title=f"{who} thread {i}") for i, (who, n) in enumerate(plan)]
            db.session.add_all(rows)
            db.session.commit()
            made[plan[0][0]] = [str(row.id) for row in rows]
    return made


@pytest.mark.parametrize("who", ["reseller", "ann", "ann_key", "bob"])
def test_conversation_pages_are_the_routes_pages(lane, acme, globex, people, threads, who):
    callers, agents = people
    headers = callers[who]
    everything = _compare(lane, acme, "/api/v1/conversations", headers)["items"]
    expected = {"reseller": threads["ann"] + threads["bob"], "bob": threads["bob"]}.get(
        who, threads["ann"])
    assert sorted(item["id"] for item in everything) == sorted(expected)
    first = agents["ann"][0]
    filtered = _compare(lane, acme, f"/api/v1/conversations?agent_id={first}&limit=2",
                        headers)
    assert all(item["agent_id"] == first for item in filtered["items"])
    if filtered["next_cursor"]:
        _compare(lane, acme, f"/api/v1/conversations?agent_id={first}&limit=2&cursor="
                 + filtered["next_cursor"], headers)
    # Another tenant's agent: nothing, as the route says.
    assert _compare(lane, acme, f"/api/v1/conversations?agent_id={agents['gus'][0]}",
                    headers)["items"] == []


def test_a_malformed_filter_is_the_routes_to_refuse(lane, acme, people, threads):
    callers, _agents = people
    for _ in range(2):
        acme.client.get("/api/v1/conversations", headers=callers["ann"])
    answered = lane.answered
    refused = acme.client.get("/api/v1/conversations?agent_id=not-a-uuid",
                              headers=callers["ann"])
    assert refused.status_code == 422 and set(refused.get_json()) == {"error"}
    assert lane.answered == answered


def test_a_new_conversation_is_listed_at_once(lane, app, acme, people, threads):
    from app.agents.models import Conversation
    from app.extensions import db
    from tenants.context import activate

    callers, _agents = people
    for _ in range(3):
        listed = acme.client.get("/api/v1/conversations", headers=callers["bob"])
    assert len(listed.get_json()["items"]) == 1
    with app.app_context(), activate(acme.info):
        row = db.session.get(Conversation, uuid.UUID(threads["bob"][0]))
        db.session.add(Conversation(agent_id=row.agent_id, user_id=row.user_id, title="New"))
        row.title = "Renamed"
        db.session.commit()
    answered = lane.answered
    titles = {c["title"] for c in acme.client.get(
        "/api/v1/conversations", headers=callers["bob"]).get_json()["items"]}
    assert titles == {"New", "Renamed"} and lane.answered == answered + 1


def test_remembered_answers_are_bounded_by_rows_and_age():
    from app.api.lane import freshness

    answers = freshness.Answers(max_rows=10)
    now = [0.0]
    answers.monotonic = lambda: now[0]
    page = {"items": [{"n": i} for i in range(4)], "next_cursor": None}
    for n in range(3):
        answers.put(("page", n), ("1",), page)
    assert len(answers) == 2 and answers.get(("page", 0), ("1",)) is None  # 12 rows > 10
    assert answers.get(("page", 2), ("1",)) is page
    assert answers.get(("page", 2), ("2",)) is None  # another counter value: not this one
    answers.put(("one", 1), ("1",), {"id": "x"})
    assert len(answers) == 3
    now[0] = freshness.MAX_AGE + 1
    assert answers.get(("one", 1), ("1",)) is None


def test_a_resellers_users_are_the_routes_users(lane, acme, globex, people):
    callers, _agents = people
    reseller = callers["reseller"]
    everyone = _compare(lane, acme, "/api/v1/users", reseller)["items"]
    assert sorted(u["email"] for u in everyone) == [
        "ann@example.com", "bob@example.com", "owner@acme.example"]
    customers = _compare(lane, acme, "/api/v1/users?role=USER&limit=1", reseller)
    assert customers["items"][0]["role"] == "USER" and customers["next_cursor"]
    _compare(lane, acme, "/api/v1/users?role=USER&limit=1&cursor=" + customers["next_cursor"],
             reseller)
    bob = next(u for u in everyone if u["email"] == "bob@example.com")
    assert _compare(lane, acme, f"/api/v1/users/{bob['id']}", reseller) == bob

    renamed = acme.client.patch(f"/api/v1/users/{bob['id']}", headers=reseller,
                                json={"role": "RESELLER"})
    assert renamed.status_code == 200
    answered = lane.answered
    assert acme.client.get(f"/api/v1/users/{bob['id']}", headers=reseller
                           ).get_json()["role"] == "RESELLER"
    assert "bob@example.com" not in [u["email"] for u in acme.client.get(
        "/api/v1/users?role=USER", headers=reseller).get_json()["items"]]
    assert lane.answered == answered + 2

    gus = globex.client.get("/api/v1/me", headers=callers["gus"]).get_json()["user_id"]
    for path, headers, status in ((f"/api/v1/users/{gus}", reseller, 404),
                                  ("/api/v1/users?role=OWNER", reseller, 422),
                                  ("/api/v1/users", callers["ann"], 403)):
        acme.client.get("/api/v1/me", headers=headers)
        answered = lane.answered
        answer = acme.client.get(path, headers=headers)
        assert answer.status_code == status and set(answer.get_json()) == {"error"}
        assert lane.answered == answered


def test_webhook_endpoint_pages_are_the_routes_pages(migrated, monkeypatch, acme, globex,
                                                     people, api_caller):
    from tests.fakes.webhooks import app_allowing

    callers, _agents = people
    with app_allowing(migrated, 9) as hooks:
        lane = Lane(hooks, monkeypatch)
        acme_http, globex_http = host_client(hooks, acme.host), host_client(hooks, globex.host)
        made = {}
        for who, client, headers in (("ann", acme_http, callers["ann"]),
                                     ("bob", acme_http, callers["bob"]),
                                     ("reseller", acme_http, callers["reseller"]),
                                     ("gus", globex_http, callers["gus"])):
            answer = client.post("/api/v1/webhooks/endpoints", headers=headers, json={
                "url": f"http://127.0.0.1:9/{who}", "event_types": ["license.created"]})
            assert answer.status_code == 201, answer.get_json()
            made[who] = answer.get_json()["id"]
        site = type(acme)(info=acme.info, host=acme.host, client=acme_http)
        for who, expected in (("ann", {"ann"}), ("reseller", {"ann", "bob", "reseller"})):
            page = _compare(lane, site, "/api/v1/webhooks/endpoints", callers[who])
            assert {item["id"] for item in page["items"]} == {made[w] for w in expected}
        # A change by the delivery side (disabled after failures) is read at once.
        assert acme_http.patch(f"/api/v1/webhooks/endpoints/{made['ann']}",
                               headers=callers["ann"], json={"enabled": False}
                               ).status_code == 200
        answered = lane.answered
        listed = acme_http.get("/api/v1/webhooks/endpoints", headers=callers["ann"]).get_json()
        assert listed["items"][0]["enabled"] is False and lane.answered == answered + 1
        # A key without the webhooks scope: the route's 403.
        key = api_caller(acme, email="ann@example.com", scopes=["agents:read"]).headers
        acme_http.get("/api/v1/me", headers=key)
        refused = acme_http.get("/api/v1/webhooks/endpoints", headers=key)
        assert refused.status_code == 403 and lane.answered == answered + 1


def test_invoice_pages_are_the_routes_pages(lane, app, acme, globex, people):
    from app import clock
    from app.auth.models import User
    from app.billing.models import Invoice
    from app.extensions import db
    from tenants.context import activate

    callers, _agents = people
    for site, email, count in ((acme, "ann@example.com", 3), (acme, "bob@example.com", 1),
                               (globex, "ann@example.com", 2)):
        with app.app_context(), activate(site.info):
            user = db.session.scalar(db.select(User).where(User.email == email))
            db.session.add_all([Invoice(
                stripe_invoice_id=f"in_{uuid.uuid4().hex}", user_id=user.id, number=f"N-{n}",
                status="paid", amount_due=1200 + n, amount_paid=1200 + n, currency="eur",
                issued_at=clock.now()) for n in range(count)])
            db.session.commit()
    mine = _compare(lane, acme, "/api/v1/billing/invoices?limit=2", callers["ann"])
    assert len(mine["items"]) == 2 and mine["next_cursor"]
    assert len(_compare(lane, acme, "/api/v1/billing/invoices?limit=2&cursor="
                        + mine["next_cursor"], callers["ann"])["items"]) == 1
    assert len(_compare(lane, acme, "/api/v1/billing/invoices", callers["reseller"]
                        )["items"]) == 4
    assert len(_compare(lane, globex, "/api/v1/billing/invoices", callers["gus"]
                        )["items"]) == 2


def test_a_resellers_products_are_the_routes_products(lane, acme, globex, people, make_user):
    callers, agents = people
    reseller = callers["reseller"]
    made = []
    for n in range(3):
        answer = acme.client.post("/api/v1/products", headers=reseller, json={
            "name": f"Product {n}", "code": f"p{n}", "agent_ids": [agents["template"][0]],
            "entitlements": ["export"]})
        assert answer.status_code == 201, answer.get_json()
        made.append(answer.get_json()["id"])
    page = _compare(lane, acme, "/api/v1/products?limit=2", reseller)
    assert [p["id"] for p in page["items"]] == made[::-1][:2]
    _compare(lane, acme, "/api/v1/products?limit=2&cursor=" + page["next_cursor"], reseller)
    assert _compare(lane, acme, f"/api/v1/products/{made[0]}", reseller)["code"] == "p0"

    make_user(globex, "owner@globex.example", role="RESELLER")
    other = _token(globex, "owner@globex.example")
    for path, site, headers, status in (
            (f"/api/v1/products/{made[0]}", globex, other, 404),  # another tenant's
            ("/api/v1/products", acme, callers["ann"], 403)):      # a customer
        site.client.get("/api/v1/me", headers=headers)
        answered = lane.answered
        answer = site.client.get(path, headers=headers)
        assert answer.status_code == status and set(answer.get_json()) == {"error"}
        assert lane.answered == answered
    assert _compare(lane, globex, "/api/v1/products", other)["items"] == []


def test_connections_closed_by_redis_are_replaced_without_leaving_the_lane(
        lane, acme, people, redis_client):
    callers, agents = people
    path = f"/api/v1/agents/{agents['ann'][2]}"
    for _ in range(2):
        acme.client.get(path, headers=callers["ann"])
    redis_client.execute_command("CLIENT", "KILL", "TYPE", "normal")  # as a restart would
    answered = lane.answered
    answer = acme.client.get(path, headers=callers["ann"])
    assert answer.status_code == 200 and lane.answered == answered + 1
