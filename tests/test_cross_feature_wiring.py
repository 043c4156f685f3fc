"""Features talk to each other: events reach webhooks, plans set the execution quota.

Two tenants throughout: one tenant's activity never produces an event at the other.
"""

from sqlalchemy import select

from app.extensions import db
from app.integrations.models import WebhookEvent
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
    run_agents_worker,
)
from tests.licensing_support import make_license


def _event_types(app, site) -> list[str]:
    with app.app_context(), activate(site.info):
        return sorted(e.type for e in db.session.scalars(select(WebhookEvent)))


def test_license_lifecycle_emits_events_for_its_tenant_only(app, acme, globex):
    from app.licensing import machines, service

    made = make_license(app, acme)
    with app.app_context(), activate(acme.info):
        license_ = service.get_license(made.id)
        machines.activate(license_, "fp-1")
        service.suspend(license_)
        service.revoke(license_)
        service.revoke(license_)  # already revoked: no second event
        db.session.commit()
    assert _event_types(app, acme) == ["license.created", "license.revoked",
                                       "license.suspended", "machine.activated"]
    assert _event_types(app, globex) == []
    with app.app_context(), activate(acme.info):
        created = db.session.scalars(select(WebhookEvent).where(
            WebhookEvent.type == "license.created")).one()
        assert created.data["license_id"] == str(made.id)
        assert created.data["key_prefix"] == "ACME"


def test_sign_up_emits_customer_created(app, acme, globex):
    from app.auth.account import sign_up

    with app.app_context(), activate(acme.info):
        result = sign_up("new@example.com", "a long enough password", "New Customer")
        db.session.commit()
        user_id = result.user.id
    with app.app_context(), activate(acme.info):
        event = db.session.scalars(select(WebhookEvent)).one()
        assert event.type == "customer.created"
        assert event.data == {"user_id": str(user_id), "email": "new@example.com",
                              "name": "New Customer"}
        assert event.owner_user_id == user_id
    assert _event_types(app, globex) == []


def test_executions_emit_their_outcome(make_agents_app, fake, acme, globex, make_user):
    from app.agents import executions
    from app.agents.service import Caller, get_agent

    application = make_agents_app()
    ann = make_user(acme, "ann@example.com")
    make_user(globex, "ann@example.com")
    agent_id = make_agent(application, acme, ann)
    with application.app_context(), activate(acme.info):
        caller = Caller(ann, "USER")
        execution, _ = executions.start_execution(caller, get_agent(caller, agent_id),
                                                  input="hello")
        execution_id = execution.id
    run_agents_worker(application)
    with application.app_context(), activate(acme.info):
        event = db.session.scalars(select(WebhookEvent)).one()
        assert event.type == "execution.succeeded"
        assert event.data["execution_id"] == str(execution_id)
        assert event.data["output"] == "Echo: hello"
        assert event.owner_user_id == ann
    assert _event_types(application, globex) == []


def test_the_execution_quota_follows_the_customers_plan(app, acme, globex, make_user):
    from app.agents.quotas import monthly_execution_limit
    from app.billing.plans import create_plan

    ann = make_user(acme, "ann@example.com")
    gus = make_user(globex, "ann@example.com")
    with app.app_context(), activate(acme.info):
        free_default = monthly_execution_limit(ann)
        create_plan("starter", "Starter", is_default=True, executions_per_month=7)
        db.session.commit()
    with app.app_context(), activate(acme.info):
        assert monthly_execution_limit(ann) == 7
    with app.app_context(), activate(globex.info):
        # globex has no plan of its own: its customers keep the built-in free allowance.
        assert monthly_execution_limit(gus) == free_default


def test_subscription_changes_emit_subscription_updated_once(app, acme, globex, make_user):
    from app.billing.sync import apply_subscription

    ann = make_user(acme, "ann@example.com")
    remote = {"id": "sub_123", "customer": "cus_1", "status": "active",
              "items": {"data": [{"price": {"id": "price_pro"},
                                  "current_period_end": 1798000000}]}}
    with app.app_context(), activate(acme.info):
        row = apply_subscription(remote, None, ann)
        apply_subscription(remote, None, ann)  # a replay: nothing changed, nothing said
        apply_subscription({**remote, "status": "past_due"}, None, ann)
        db.session.commit()
        events = db.session.scalars(select(WebhookEvent).order_by(WebhookEvent.created_at))
        statuses = [(e.type, e.data["status"]) for e in events]
        assert statuses == [("subscription.updated", "active"),
                            ("subscription.updated", "past_due")]
        assert row.user_id == ann
    assert _event_types(app, globex) == []


def test_a_spent_quota_emits_quota_exceeded_once_a_month(app, acme, globex, make_user):
    import pytest

    from app.agents.quotas import reserve
    from app.billing.plans import create_plan
    from app.errors import ApiError

    ann = make_user(acme, "ann@example.com")
    make_user(globex, "ann@example.com")
    with app.app_context(), activate(acme.info):
        create_plan("tiny", "Tiny", is_default=True, executions_per_month=1)
        db.session.commit()
        reserve(ann)
        db.session.commit()
        for _ in range(3):  # refused three times: announced once
            with pytest.raises(ApiError) as refused:
                reserve(ann)
            assert refused.value.code == "quota_exceeded"
    with app.app_context(), activate(acme.info):
        events = db.session.scalars(select(WebhookEvent)).all()
        assert [(e.type, e.data["quota"], e.data["limit"]) for e in events] == [
            ("quota.exceeded", "executions_per_month", 1)]
    assert _event_types(app, globex) == []
