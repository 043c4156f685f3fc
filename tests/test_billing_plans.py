"""Plans and limits: what limits_for() answers, with and without Stripe; client retries."""

from __future__ import annotations

import pytest

from app.billing.limits import FREE_PLAN, free_plan, limits_for
from app.billing.models import Subscription
from tests import billing_support
from tests.billing_support import (
    WEBHOOK_PATH,
    add_plan,
    buy,
    client_for,
    connect,
    count,
    post_event,
)

# Shared fixtures (pytest finds fixtures by module attribute).
billing_app = billing_support.billing_app
fake_stripe = billing_support.fake_stripe


def _limits(application, site, user_id):
    from tenants.context import activate

    with application.app_context(), activate(site.info):
        return limits_for(user_id)


def _free(application):
    """The built-in free plan as the test configuration sets it (ALBEDO_FREE_PLAN_*)."""
    with application.app_context():
        return free_plan()


def test_without_stripe_everyone_is_on_the_free_plan_and_billing_says_so(
        app, platform, acme, make_user):
    from app.billing.plans import create_plan
    from app.extensions import db
    from tenants.context import activate

    user = make_user(acme, "pat@customer.example")
    with app.app_context(), activate(acme.info):
        create_plan("pro", "Pro", stripe_price_id="price_pro", agents=50)
        db.session.commit()
    assert _limits(app, acme, user) == _free(app)
    assert _limits(app, acme, None) == _free(app)
    response = platform.client.post(WEBHOOK_PATH, data=b"{}",
                                    content_type="application/json",
                                    headers={"Stripe-Signature": "t=1,v1=x"})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "billing_not_configured"
    with app.app_context(), activate(acme.info):
        from app.billing.checkout import start_checkout
        from app.errors import ApiError

        with pytest.raises(ApiError) as raised:
            start_checkout(user, user, "pat@customer.example")
        assert raised.value.code == "billing_not_configured"
    from tests.conftest import login

    login(acme, "pat@customer.example")
    html = acme.client.get("/billing").get_data(as_text=True)
    assert 'data-testid="billing-not-configured"' in html
    assert 'data-testid="plan-name">Free<' in html
    assert "Choose</button>" not in html


def test_a_tenants_default_plan_is_the_free_plan_of_its_customers(
        billing_app, platform, acme, globex, make_user, fake_stripe):
    from app.billing.plans import create_plan
    from app.extensions import db
    from tenants.context import activate

    acme_user = make_user(acme, "pat@customer.example")
    globex_user = make_user(globex, "pat@customer.example")
    with billing_app.app_context(), activate(acme.info):
        create_plan("starter", "Starter", is_default=True, agents=2, api_keys=2,
                    features=["sandbox"])
        db.session.commit()
    acme_limits = _limits(billing_app, acme, acme_user)
    assert (acme_limits.plan_name, acme_limits.agents, acme_limits.api_keys) == ("Starter", 2, 2)
    assert acme_limits.has_feature("sandbox")
    # Globex never sees Acme's default plan.
    assert _limits(billing_app, globex, globex_user) == _free(billing_app)


def test_plan_limits_follow_the_subscription_stripe_reports(
        billing_app, platform, acme, globex, make_user, fake_stripe):
    account = connect(billing_app, acme, fake_stripe)
    connect(billing_app, globex, fake_stripe)
    plan, _ = add_plan(billing_app, acme, fake_stripe, code="pro", agents=25, licenses=None,
                       executions_per_month=10_000, features=["priority"])
    add_plan(billing_app, globex, fake_stripe, code="pro", agents=99)
    acme_user = make_user(acme, "pat@customer.example")
    globex_user = make_user(globex, "pat@customer.example")
    assert not FREE_PLAN.allows("agents", 1)

    paid = buy(billing_app, acme, fake_stripe, plan, acme_user, "pat@customer.example",
               account)
    event = fake_stripe.event("checkout.session.completed", paid["session"], account=account)
    assert post_event(client_for(billing_app, platform), event).status_code == 200

    limits = _limits(billing_app, acme, acme_user)
    assert (limits.plan_name, limits.agents, limits.licenses) == ("Pro", 25, None)
    assert limits.allows("agents", 24) and not limits.allows("agents", 25)
    assert limits.allows("licenses", 10**6) and limits.has_feature("priority")
    assert _limits(billing_app, globex, globex_user) == _free(billing_app)
    assert _limits(billing_app, acme, None) == _free(billing_app)  # the reseller's own plan

    fake_stripe.update_subscription(paid["subscription"]["id"], account, status="canceled")
    gone = fake_stripe.event("customer.subscription.deleted", paid["subscription"],
                             account=account)
    assert post_event(client_for(billing_app, platform), gone).status_code == 200
    assert _limits(billing_app, acme, acme_user) == _free(billing_app)


def test_a_reseller_is_limited_by_its_platform_plan(
        billing_app, platform, acme, globex, fake_stripe):
    plan, _ = add_plan(billing_app, platform, fake_stripe, code="agency", amount=9900,
                       customers=500, agents=50)
    paid = buy(billing_app, acme, fake_stripe, plan, None, "owner@acme.example", None)
    event = fake_stripe.event("invoice.paid", paid["invoice"])
    assert post_event(client_for(billing_app, platform), event).get_json()["outcome"] == "processed"
    limits = _limits(billing_app, acme, None)
    assert (limits.plan_name, limits.customers) == ("Agency", 500)
    assert _limits(billing_app, globex, None) == _free(billing_app)
    # The reseller's receipt comes from the platform, in the platform's branding.
    from sqlalchemy import select

    from app.email.models import OutboundEmail
    from app.extensions import db
    from tenants.context import activate

    with billing_app.app_context(), activate(platform.info):
        email = db.session.scalars(select(OutboundEmail)).one()
        assert email.to_address == "owner@acme.example"
        assert email.from_name == "Albedo"


def test_stripe_answering_500_500_200_succeeds_with_one_idempotency_key(
        billing_app, platform, acme, make_user, fake_stripe):
    from app.billing.checkout import start_checkout
    from tenants.context import activate

    account = connect(billing_app, acme, fake_stripe)
    plan, _ = add_plan(billing_app, acme, fake_stripe)
    user = make_user(acme, "pat@customer.example")
    fake_stripe.fail_next("POST", "/v1/checkout/sessions", 500, 500)
    with billing_app.app_context(), activate(acme.info):
        started = start_checkout(plan, user, "pat@customer.example")
    calls = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert [c.status for c in calls] == [500, 500, 200]
    keys = {c.headers.get("Idempotency-Key") for c in calls}
    assert len(keys) == 1 and None not in keys
    assert {c.headers.get("Stripe-Account") for c in calls} == {account}
    session = fake_stripe.get(started.session_id, account)
    assert session["_application_fee_percent"] == "12.5"
    assert session["success_url"].startswith("http://acme.localhost:5000/billing")
    assert session["metadata"] == {"albedo_tenant_id": str(acme.info.id),
                                   "albedo_user_id": str(user)}
    assert count(billing_app, Subscription) == 0


def test_a_customer_cannot_buy_before_its_reseller_is_connected(
        billing_app, platform, acme, make_user, fake_stripe):
    from app.billing.checkout import start_checkout
    from app.errors import ApiError
    from tenants.context import activate

    plan, _ = add_plan(billing_app, acme, fake_stripe)
    user = make_user(acme, "pat@customer.example")
    with billing_app.app_context(), activate(acme.info), pytest.raises(ApiError) as raised:
        start_checkout(plan, user, "pat@customer.example")
    assert raised.value.code == "reseller_not_connected"
    assert fake_stripe.calls_to("POST", "/v1/checkout/sessions") == []
