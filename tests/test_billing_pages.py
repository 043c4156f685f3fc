"""Billing pages for each role, in two tenants, with and without Stripe."""

from __future__ import annotations

import re

from tests import billing_support
from tests.billing_support import add_plan, connect, post_event
from tests.conftest import login

fake_stripe = billing_support.fake_stripe
app = billing_support.app


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_customer_page_chooses_a_plan_and_shows_only_its_tenants_plans(
        app, platform, acme, globex, make_user, fake_stripe):
    connect(app, acme, fake_stripe)
    plan, _ = add_plan(app, acme, fake_stripe, amount=1900)
    add_plan(app, globex, fake_stripe, amount=2900)
    make_user(acme, "pat@customer.example")
    make_user(globex, "pat@customer.example")
    assert login(acme, "pat@customer.example").status_code in (302, 303)
    page = acme.client.get("/billing")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "19.00 USD" in html and "29.00 USD" not in html
    assert 'data-testid="plan-name">Free<' in html
    assert "not configured" not in html
    chosen = acme.client.post("/billing/checkout",
                              data={"plan_id": str(plan), "csrf_token": _csrf(html)})
    assert chosen.status_code == 303
    assert chosen.headers["Location"].startswith("https://checkout.stripe.test/")


def test_reseller_page_shows_connect_status_and_only_its_customers(
        app, platform, acme, globex, make_user, fake_stripe):
    from app.billing.checkout import start_checkout
    from tenants.context import activate

    account = connect(app, acme, fake_stripe)
    plan, _ = add_plan(app, acme, fake_stripe)
    customer = make_user(acme, "pat@customer.example")
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(globex, "owner@globex.example", role="RESELLER")
    with app.app_context(), activate(acme.info):
        started = start_checkout(plan, customer, "pat@customer.example")
    paid = fake_stripe.complete_checkout(started.session_id, account)
    post_event(platform.client, fake_stripe.event("checkout.session.completed",
                                                  paid["session"], account=account))
    login(acme, "owner@acme.example")
    html = acme.client.get("/billing").get_data(as_text=True)
    assert "pat@customer.example" in html and account in html and "takes payments" in html
    login(globex, "owner@globex.example")
    other = globex.client.get("/billing").get_data(as_text=True)
    assert "pat@customer.example" not in other and account not in other
    assert "Connect Stripe" in other


def test_platform_page_shows_resellers_subscriptions_and_revenue(
        app, platform, acme, globex, make_user, fake_stripe):
    from app.billing.checkout import start_checkout
    from tenants.context import activate

    agency, _ = add_plan(app, platform, fake_stripe, code="agency", amount=9900)
    with app.app_context(), activate(acme.info):
        started = start_checkout(agency, None, "owner@acme.example")
    paid = fake_stripe.complete_checkout(started.session_id, None)
    post_event(platform.client, fake_stripe.event("invoice.paid", paid["invoice"]))
    make_user(platform, "ops@albedo.example", role="ADMIN")
    login(platform, "ops@albedo.example")
    html = platform.client.get("/billing").get_data(as_text=True)
    assert "Acme Agents" in html and "Globex" not in html
    assert 'data-testid="revenue">99.00 USD' in html

