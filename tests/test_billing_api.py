"""The billing API over HTTP: scopes, roles, two tenants, the state Stripe reports."""

from __future__ import annotations

import itertools

import pytest

from tests import billing_support
from tests.billing_support import add_plan, connect, post_event

# Shared fixture (pytest finds fixtures by module attribute).
fake_stripe = billing_support.fake_stripe
app = billing_support.app


@pytest.fixture
def shops(app, platform, acme, globex, fake_stripe):
    """Acme and Globex, both connected, each selling a look-alike Pro plan."""
    shops = {}
    for site in (acme, globex):
        account = connect(app, site, fake_stripe)
        plan, price = add_plan(app, site, fake_stripe, agents=10)
        shops[site.info.slug] = {"account": account, "plan": str(plan), "price": price}
    return shops


def _pay(fake, platform, started, account):
    """Pay on Stripe's page, then let Stripe's events reach the webhook."""
    paid = fake.complete_checkout(started["session_id"], account)
    for event in (fake.event("checkout.session.completed", paid["session"], account=account),
                  fake.event("invoice.paid", paid["invoice"], account=account)):
        assert post_event(platform.client, event).status_code == 200
    return paid


def test_a_customer_buys_sees_its_subscription_and_invoices_and_nothing_of_the_other_tenant(
        app, platform, acme, globex, shops, api_caller, fake_stripe):
    pat_acme = api_caller(acme, email="pat@customer.example")
    pat_globex = api_caller(globex, email="pat@customer.example")
    before = acme.client.get("/api/v1/billing/subscription", headers=pat_acme.headers)
    assert before.status_code == 200
    assert before.get_json()["subscription"] is None
    assert before.get_json()["limits"]["plan_name"] == "Free"

    # Globex's plan id is unknown on Acme's site.
    wrong = acme.client.post("/api/v1/billing/checkout", headers=pat_acme.headers,
                             json={"plan_id": shops["globex"]["plan"]})
    assert wrong.status_code == 404 and wrong.get_json()["error"]["code"] == "plan_not_found"

    started = acme.client.post("/api/v1/billing/checkout", headers=pat_acme.headers,
                               json={"plan_id": shops["acme"]["plan"]})
    assert started.status_code == 201, started.get_data(as_text=True)
    assert started.get_json()["url"].startswith("https://checkout.stripe.test/")
    _pay(fake_stripe, platform, started.get_json(), shops["acme"]["account"])

    state = acme.client.get("/api/v1/billing/subscription", headers=pat_acme.headers).get_json()
    assert state["subscription"]["status"] == "active"
    assert state["subscription"]["stripe_price_id"] == shops["acme"]["price"]
    assert (state["limits"]["plan_name"], state["limits"]["agents"]) == ("Pro", 10)
    again = acme.client.post("/api/v1/billing/checkout", headers=pat_acme.headers,
                             json={"plan_id": shops["acme"]["plan"]})
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "already_subscribed"

    invoices = acme.client.get("/api/v1/billing/invoices?limit=1",
                               headers=pat_acme.headers).get_json()
    assert [i["amount_paid"] for i in invoices["items"]] == [1900]
    assert invoices["items"][0]["currency"] == "usd"
    assert invoices["next_cursor"] is None

    portal = acme.client.post("/api/v1/billing/portal", headers=pat_acme.headers)
    assert portal.status_code == 201
    assert portal.get_json()["url"].startswith("https://billing.stripe.test/")
    portal_call = fake_stripe.calls_to("POST", "/v1/billing_portal/sessions")[-1]
    assert portal_call.headers["Stripe-Account"] == shops["acme"]["account"]
    assert portal_call.params["return_url"] == "http://acme.localhost:5000/billing"

    # The look-alike customer of Globex has nothing, and Acme's rows are invisible to it.
    other = acme.client.get("/api/v1/billing/subscription", headers=pat_globex.headers)
    assert other.status_code == 401  # a Globex key is unknown on Acme's site
    globex_state = globex.client.get("/api/v1/billing/subscription",
                                     headers=pat_globex.headers).get_json()
    assert globex_state["subscription"] is None
    assert globex.client.get("/api/v1/billing/invoices",
                             headers=pat_globex.headers).get_json()["items"] == []
    no_portal = globex.client.post("/api/v1/billing/portal", headers=pat_globex.headers)
    assert no_portal.status_code == 409
    assert no_portal.get_json()["error"]["code"] == "no_subscription"


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_subscription_events_in_every_order_end_in_the_state_the_api_reports(
        app, platform, acme, shops, api_caller, fake_stripe, order):
    caller = api_caller(acme)
    started = acme.client.post("/api/v1/billing/checkout", headers=caller.headers,
                               json={"plan_id": shops["acme"]["plan"]}).get_json()
    account = shops["acme"]["account"]
    paid = fake_stripe.complete_checkout(started["session_id"], account)
    sub = paid["subscription"]
    history = [dict(sub, status="trialing"), dict(sub, status="active"),
               dict(sub, status="past_due")]
    names = ["customer.subscription.created", "customer.subscription.updated",
             "customer.subscription.updated"]
    # Stripe's final word: active, cancelling at the end of the period.
    fake_stripe.update_subscription(sub["id"], account, status="active",
                                    cancel_at_period_end=True)
    events = [fake_stripe.event(names[i], history[i], account=account) for i in range(3)]
    for i in order:
        assert post_event(platform.client, events[i]).status_code == 200
    state = acme.client.get("/api/v1/billing/subscription", headers=caller.headers).get_json()
    assert state["subscription"]["status"] == "active"
    assert state["subscription"]["cancel_at_period_end"] is True


def test_scopes_and_roles_are_enforced(app, platform, acme, shops, api_caller):
    reader = api_caller(acme, scopes=["billing:read"])
    assert acme.client.get("/api/v1/billing/subscription",
                           headers=reader.headers).status_code == 200
    denied = acme.client.post("/api/v1/billing/checkout", headers=reader.headers,
                              json={"plan_id": shops["acme"]["plan"]})
    assert denied.status_code == 403
    assert denied.get_json()["error"]["code"] == "insufficient_scope"
    nobody = acme.client.get("/api/v1/billing/invoices")
    assert nobody.status_code == 401


def test_a_reseller_buys_a_platform_plan_on_the_platform_account(
        app, platform, acme, globex, shops, api_caller, fake_stripe):
    agency, _ = add_plan(app, platform, fake_stripe, code="agency", amount=9900, customers=200)
    owner = api_caller(acme, role="RESELLER")
    plans = acme.client.get("/api/v1/billing/plans", headers=owner.headers).get_json()
    assert [p["code"] for p in plans] == ["pro"]  # what Acme sells, not what it buys
    started = acme.client.post("/api/v1/billing/checkout", headers=owner.headers,
                               json={"plan_id": str(agency)})
    assert started.status_code == 201, started.get_data(as_text=True)
    call = fake_stripe.calls_to("POST", "/v1/checkout/sessions")[-1]
    assert "Stripe-Account" not in call.headers  # the platform's own account
    assert "application_fee_percent" not in call.params["subscription_data"]
    _pay(fake_stripe, platform, started.get_json(), None)
    state = acme.client.get("/api/v1/billing/subscription", headers=owner.headers).get_json()
    assert (state["limits"]["plan_name"], state["limits"]["customers"]) == ("Agency", 200)
    globex_owner = api_caller(globex, role="RESELLER")
    globex_state = globex.client.get("/api/v1/billing/subscription",
                                     headers=globex_owner.headers).get_json()
    assert globex_state["subscription"] is None
    assert globex_state["limits"]["plan_name"] == "Free"


def test_a_reseller_connects_its_stripe_account_and_account_updated_is_routed_to_it(
        app, platform, acme, globex, api_caller, fake_stripe):
    owner = api_caller(acme, role="RESELLER")
    globex_owner = api_caller(globex, role="RESELLER")
    customer = api_caller(acme)
    assert acme.client.post("/api/v1/billing/connect",
                            headers=customer.headers).status_code == 403
    status = acme.client.get("/api/v1/billing/connect", headers=owner.headers).get_json()
    assert status["connected"] is False

    first = acme.client.post("/api/v1/billing/connect", headers=owner.headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    second = acme.client.post("/api/v1/billing/connect", headers=owner.headers)
    assert len(fake_stripe.calls_to("POST", "/v1/accounts")) == 1  # made once, resumed after
    status = acme.client.get("/api/v1/billing/connect", headers=owner.headers).get_json()
    account = status["stripe_account_id"]
    assert first.get_json()["url"].endswith(account) and second.get_json()["url"].endswith(account)
    link = fake_stripe.calls_to("POST", "/v1/account_links")[-1].params
    assert link["return_url"] == "http://acme.localhost:5000/billing/connect/return"
    assert status["charges_enabled"] is False

    # Onboarding finished on Stripe's side: account.updated (a Connect event) reaches Acme.
    remote = fake_stripe.get(account)
    remote.update(charges_enabled=True, payouts_enabled=True, details_submitted=True)
    event = fake_stripe.event("account.updated", remote, account=account)
    assert post_event(platform.client, event).get_json()["outcome"] == "processed"
    status = acme.client.get("/api/v1/billing/connect", headers=owner.headers).get_json()
    assert status["charges_enabled"] and status["payouts_enabled"]
    globex_status = globex.client.get("/api/v1/billing/connect",
                                      headers=globex_owner.headers).get_json()
    assert globex_status["connected"] is False


def test_a_reseller_adds_plans_for_its_customers_only(
        app, platform, acme, globex, api_caller):
    owner = api_caller(acme, role="RESELLER")
    customer = api_caller(acme)
    globex_customer = api_caller(globex)
    body = {"code": "team", "name": "Team", "stripe_price_id": "price_team",
            "amount_minor": 4900, "currency": "EUR", "agents": 5, "features": ["sso"]}
    created = acme.client.post("/api/v1/billing/plans", headers=owner.headers, json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["currency"] == "eur" and created.get_json()["licenses"] is None
    again = acme.client.post("/api/v1/billing/plans", headers=owner.headers, json=body)
    assert again.status_code == 422
    assert again.get_json()["error"]["details"]["fields"]["code"] == "is taken"
    bad = acme.client.post("/api/v1/billing/plans", headers=owner.headers,
                           json={**body, "code": "x", "agents": -1, "currency": "euro"})
    assert set(bad.get_json()["error"]["details"]["fields"]) >= {"agents", "currency"}
    assert acme.client.post("/api/v1/billing/plans", headers=customer.headers,
                            json={**body, "code": "mine"}).status_code == 403
    seen = acme.client.get("/api/v1/billing/plans", headers=customer.headers).get_json()
    assert [p["code"] for p in seen] == ["team"]
    assert globex.client.get("/api/v1/billing/plans",
                             headers=globex_customer.headers).get_json() == []
