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



# --- the form that adds a plan --------------------------------------------------------------

PLAN_FIELDS = {"name": "", "code": "", "stripe_price_id": "", "interval": "month", "price": "",
               "currency": "usd", "executions_per_month": "", "agents": "", "customers": "",
               "licenses": "", "api_keys": "", "features": ""}


def _add_plan(site, **fields):
    html = site.client.get("/billing").get_data(as_text=True)
    assert 'data-testid="plan-form"' in html
    return site.client.post("/billing/plans",
                            data={**PLAN_FIELDS, **fields, "csrf_token": _csrf(html)})


def _plans(app, site):
    from sqlalchemy import select

    from app.billing.models import Plan
    from app.extensions import db
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        return {p.code: p for p in db.session.scalars(select(Plan))}


def test_platform_adds_a_plan_for_resellers_with_the_form(
        app, platform, acme, make_user, fake_stripe):
    make_user(platform, "ops@albedo.example", role="ADMIN")
    login(platform, "ops@albedo.example")
    added = _add_plan(platform, name="Agency", stripe_price_id="price_agency",
                      interval="year", price="990.00", executions_per_month="20000",
                      agents="50", licenses="0", api_keys="10",
                      features="priority, white-label")
    assert added.status_code == 302
    html = platform.client.get("/billing").get_data(as_text=True)
    assert "Plan Agency added." in html and "990.00 USD / year" in html
    plan = _plans(app, platform)["agency"]
    assert (plan.stripe_price_id, plan.interval, plan.amount_minor) == ("price_agency", "year",
                                                                       99000)
    # Empty limits are unlimited; 0 is a real limit of none.
    assert (plan.executions_per_month, plan.agents, plan.customers, plan.licenses,
            plan.api_keys) == (20000, 50, None, 0, 10)
    assert plan.features == ["priority", "white-label"]
    # Resellers choose among the platform's plans; a reseller's own list stays its own.
    assert _plans(app, acme) == {}
    make_user(acme, "owner@acme.example", role="RESELLER")
    login(acme, "owner@acme.example")
    assert "990.00 USD / year" in acme.client.get("/billing").get_data(as_text=True)


def test_reseller_adds_plans_for_its_customers_and_globex_never_sees_them(
        app, platform, acme, globex, make_user, fake_stripe):
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(globex, "owner@globex.example", role="RESELLER")
    make_user(acme, "pat@customer.example")
    make_user(globex, "pat@customer.example")
    login(acme, "owner@acme.example")
    assert _add_plan(acme, name="Acme Pro", stripe_price_id="price_acme_pro",
                     price="49.00", agents="5").status_code == 302
    assert _add_plan(acme, name="Acme Free", is_default="y", agents="1",
                     api_keys="1").status_code == 302
    assert set(_plans(app, acme)) == {"acme-pro", "acme-free"}
    assert _plans(app, acme)["acme-free"].is_default

    login(globex, "owner@globex.example")
    other = globex.client.get("/billing").get_data(as_text=True)
    assert "Acme Pro" not in other and "49.00 USD" not in other and "Acme Free" not in other
    # The same name (and so the same code) is globex's own to use.
    assert _add_plan(globex, name="Acme Pro", stripe_price_id="price_acme_pro",
                     price="59.00").status_code == 302
    assert _plans(app, globex)["acme-pro"].amount_minor == 5900
    assert _plans(app, acme)["acme-pro"].amount_minor == 4900
    login(globex, "pat@customer.example")
    assert "49.00 USD" not in globex.client.get("/billing").get_data(as_text=True)
    login(acme, "pat@customer.example")
    mine = acme.client.get("/billing").get_data(as_text=True)
    assert "49.00 USD" in mine and "59.00 USD" not in mine
    assert 'data-testid="plan-name">Acme Free<' in mine
    assert 'data-testid="plan-form"' not in mine  # customers buy plans, they do not add them


def test_plan_form_shows_what_is_wrong_on_the_page_and_stores_nothing(
        app, platform, acme, make_user, fake_stripe):
    make_user(acme, "owner@acme.example", role="RESELLER")
    login(acme, "owner@acme.example")
    refused = _add_plan(acme, name="Pro", price="nineteen", agents="-1")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "must be an amount such as 19.00" in html and "0 or more" in html
    assert 'value="Pro"' in html  # what was typed stays
    refused = _add_plan(acme, name="Pro", stripe_price_id="prod_123")
    assert refused.status_code == 422
    assert "must be a Stripe price id (price_…)" in refused.get_data(as_text=True)
    refused = _add_plan(acme, name="Pro")
    assert "only the default (free) plan has no Stripe price" in refused.get_data(as_text=True)
    assert _plans(app, acme) == {}
    assert _add_plan(acme, name="Pro", stripe_price_id="price_1").status_code == 302
    taken = _add_plan(acme, name="Pro", stripe_price_id="price_2")
    assert taken.status_code == 422 and "is taken" in taken.get_data(as_text=True)
    assert set(_plans(app, acme)) == {"pro"}


def test_plan_form_needs_a_csrf_token_and_a_seller(app, platform, acme, make_user, fake_stripe):
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(acme, "pat@customer.example")
    login(acme, "owner@acme.example")
    acme.client.get("/billing")
    forged = acme.client.post("/billing/plans", data={**PLAN_FIELDS, "name": "Pro",
                                                      "stripe_price_id": "price_1"})
    assert forged.status_code == 400
    login(acme, "pat@customer.example")
    html = acme.client.get("/billing").get_data(as_text=True)
    customer = acme.client.post("/billing/plans", data={
        **PLAN_FIELDS, "name": "Pro", "stripe_price_id": "price_1", "csrf_token": _csrf(html)})
    assert customer.status_code == 403
    assert _plans(app, acme) == {}
