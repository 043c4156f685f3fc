"""The rebilling API and pages: price books, the ledger (cursor pages, filters, CSV),
margins, plan allowances; a customer never sees the provider's model or cost."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from app import clock
from app.billing import ledger
from app.extensions import db
from tenants.context import activate
from tests.conftest import login
from tests.rebilling_support import set_book

SECRET_MODEL = "provider-secret-model"
COST_MICROS = 987_654  # micro-dollars: 98765400 micro-cents, "0.99 USD"
LEAKS = (SECRET_MODEL, "98765400", "987654", "0.99", "118518480", "wholesale", "USD",
         "provider_cost")


def _charge(app, site, user_id, agent_id=None, n: int = 1) -> list[uuid.UUID]:
    with app.app_context(), activate(site.info):
        ids = []
        for _ in range(n):
            execution = SimpleNamespace(
                id=uuid.uuid4(), caller_user_id=user_id, prompt_tokens=1000,
                completion_tokens=10, cost_micros=COST_MICROS, agent_id=agent_id or uuid.uuid4(),
                model=SECRET_MODEL, version_number=1, finished_at=clock.now(), source="api",
                license_id=None, api_key_id=None, started_at=clock.now())
            ids.append(ledger.record(execution, "succeeded").id)
        db.session.commit()
        return ids


def _books(app, platform, acme, globex):
    set_book(app, platform, kind="markup", markup_bp=12_000)
    for site in (acme, globex):
        set_book(app, site, "eur", 920_000, kind="tokens", input_per_million_minor=1000,
                 output_per_million_minor=2000)


def test_a_customer_sees_its_own_usage_in_its_sellers_prices_only(
        app, platform, acme, globex, api_caller, make_user):
    _books(app, platform, acme, globex)
    ann = api_caller(acme, email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")
    agent = uuid.uuid4()
    _charge(app, acme, ann.user_id, agent, n=3)
    _charge(app, acme, api_caller(acme, email="bob@example.com").user_id)
    _charge(app, globex, gus.user_id, n=2)

    first = acme.client.get("/api/v1/billing/ledger?limit=2", headers=ann.headers)
    assert first.status_code == 200
    page = first.get_json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = acme.client.get(f"/api/v1/billing/ledger?limit=2&cursor={page['next_cursor']}",
                           headers=ann.headers).get_json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    items = page["items"] + rest["items"]
    assert {i["currency"] for i in items} == {"eur"}
    assert {i["amount_micro"] for i in items} == {1_000 * 1000 + 10 * 2000}
    for item in items:
        assert set(item) <= {"id", "kind", "reverses_id", "execution_id", "agent_id",
                             "channel", "credential_kind", "credential_id", "prompt_tokens",
                             "completion_tokens", "amount_micro", "included_micro",
                             "credits_micro", "billable_micro", "currency", "period",
                             "occurred_at"}
    for leak in LEAKS:
        assert leak not in first.get_data(as_text=True)
    csv_answer = acme.client.get("/api/v1/billing/ledger.csv", headers=ann.headers)
    assert csv_answer.status_code == 200 and csv_answer.mimetype == "text/csv"
    csv_text = csv_answer.get_data(as_text=True)
    assert len(csv_text.strip().splitlines()) == 4  # header + ann's three
    for leak in LEAKS:
        assert leak not in csv_text
    spending = acme.client.get("/api/v1/billing/spending", headers=ann.headers)
    assert spending.get_json()["spent"] == 3  # 3 x 1.02 cents, rounded once
    # The other tenant's look-alike customer sees only its own two.
    theirs = globex.client.get("/api/v1/billing/ledger", headers=gus.headers).get_json()
    assert len(theirs["items"]) == 2
    # A cursor of one tenant is refused by the other.
    assert globex.client.get(f"/api/v1/billing/ledger?cursor={page['next_cursor']}",
                             headers=gus.headers).status_code == 400
    # The page: spend in euros, never the model, the provider's cost or the wholesale.
    make_user(acme, "carol@example.com")
    _charge(app, acme, make_user(acme, "dan@example.com"))
    assert login(acme, "ann@example.com").status_code == 302
    html = acme.client.get("/billing/usage").get_data(as_text=True)
    assert "0.03 EUR" in html and "Usage" in html
    for leak in LEAKS:
        assert leak not in html
    assert "Albedo" not in html


def test_a_reseller_sees_margins_and_edits_its_price_book(
        app, platform, acme, globex, api_caller, make_user):
    _books(app, platform, acme, globex)
    staff = api_caller(acme, role="RESELLER")
    other = api_caller(globex, role="RESELLER")
    ann = api_caller(acme, email="ann@example.com")
    agent = uuid.uuid4()
    _charge(app, acme, ann.user_id, agent, n=2)
    _charge(app, globex, api_caller(globex, email="ann@example.com").user_id)

    entries = acme.client.get(f"/api/v1/billing/ledger?agent_id={agent}",
                              headers=staff.headers).get_json()["items"]
    assert len(entries) == 2
    assert {e["model"] for e in entries} == {SECRET_MODEL}
    assert {e["provider_cost_micro"] for e in entries} == {98_765_400}
    assert {e["wholesale_micro"] for e in entries} == {118_518_480}  # x1.2, in usd
    assert {e["margin_micro"] for e in entries} == {None}  # eur vs usd: not comparable
    assert acme.client.get(f"/api/v1/billing/ledger?customer_id={uuid.uuid4()}",
                           headers=staff.headers).get_json()["items"] == []
    bad = acme.client.get("/api/v1/billing/ledger?period=2026-13", headers=staff.headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["code"]
    margins = acme.client.get("/api/v1/billing/margins?group_by=agent",
                              headers=staff.headers).get_json()
    assert [(r["key"], r["entries"], r["revenue_micro"]) for r in margins["items"]] == [
        (str(agent), 2, 2 * 1_020_000)]
    day = acme.client.get("/api/v1/billing/margins?group_by=day",
                          headers=staff.headers).get_json()["items"]
    assert len(day) == 1 and day[0]["key"] == clock.now().date().isoformat()

    # The price book through the API, kept per tenant.
    answer = acme.client.post("/api/v1/billing/prices", headers=staff.headers, json={
        "kind": "execution", "model": "gpt-4o", "per_execution_minor": 5})
    assert answer.status_code == 200, answer.get_json()
    listed = acme.client.get("/api/v1/billing/prices", headers=staff.headers).get_json()
    assert listed["book"]["currency"] == "eur"
    assert sorted(p["selector"] for p in listed["items"]) == ["default", "model:gpt-4o"]
    theirs = globex.client.get("/api/v1/billing/prices", headers=other.headers).get_json()
    assert [p["selector"] for p in theirs["items"]] == ["default"]
    assert globex.client.delete(f"/api/v1/billing/prices/{answer.get_json()['id']}",
                                headers=other.headers).status_code == 404
    for body in ({"kind": "tokens"}, {"kind": "execution", "per_execution_minor": 2**31},
                 {"kind": "markup", "markup_bp": -1}, {"kind": "nope"}):
        refused = acme.client.post("/api/v1/billing/prices", headers=staff.headers, json=body)
        assert refused.status_code == 422, body
        assert refused.get_json()["error"]["code"] in ("invalid_price", "validation_failed")
    locked = acme.client.put("/api/v1/billing/prices/book", headers=staff.headers,
                             json={"currency": "usd"})
    assert locked.status_code == 409 and locked.get_json()["error"]["code"] == "currency_locked"
    assert acme.client.get("/api/v1/billing/prices", headers=ann.headers).status_code == 403

    make_user(acme, "owner@acme.example", role="RESELLER")
    assert login(acme, "owner@acme.example").status_code == 302
    html = acme.client.get("/billing/usage?group_by=day").get_data(as_text=True)
    assert "<svg" in html and 'data-testid="margins"' in html and "Price book (EUR)" in html
    assert "Albedo" not in html


def test_the_platform_sees_wholesale_revenue_per_reseller(
        app, platform, acme, globex, api_caller, make_user):
    _books(app, platform, acme, globex)
    _charge(app, acme, api_caller(acme, email="ann@example.com").user_id, n=2)
    _charge(app, globex, api_caller(globex, email="ann@example.com").user_id)
    make_user(platform, "admin@example.com", role="ADMIN")
    assert login(platform, "admin@example.com").status_code == 302
    html = platform.client.get("/billing/usage").get_data(as_text=True)
    assert "Acme Agents" in html and "Globex AI" in html
    assert "2.37 USD" in html and "1.19 USD" in html  # 2 and 1 x 118518480 micro-cents
    # A reseller's staff cannot reach the platform's view on a reseller domain.
    make_user(acme, "owner@acme.example", role="RESELLER")
    login(acme, "owner@acme.example")
    assert "Globex" not in acme.client.get("/billing/usage").get_data(as_text=True)


def test_a_plans_included_usage_is_free_and_overage_is_priced(app, acme, make_user,
                                                              api_caller):
    from app.billing.plans import create_plan

    set_book(app, acme, kind="execution", per_execution_minor=100)
    with app.app_context(), activate(acme.info):
        plan = create_plan("free", "Free", is_default=True)
        db.session.commit()
        plan_id = plan.id
    staff = api_caller(acme, role="RESELLER")
    answer = acme.client.put(f"/api/v1/billing/plans/{plan_id}/usage", headers=staff.headers,
                             json={"included_minor": 150, "overage_bp": 20_000})
    assert answer.status_code == 200, answer.get_json()
    ann = make_user(acme, "ann@example.com")
    _charge(app, acme, ann, n=3)
    entries = acme.client.get("/api/v1/billing/ledger", headers=staff.headers).get_json()
    parts = sorted((e["included_micro"], e["billable_micro"]) for e in entries["items"])
    # 100 + 100 + 100 against 150 included: 100 free, then 50 free + 50 at 2x, then 100 at 2x.
    assert parts == [(0, 200_000_000), (50_000_000, 100_000_000), (100_000_000, 0)]
