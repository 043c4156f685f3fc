"""Plans a licensing seller depends on: PATCH /api/v1/billing/plans/{id} (name, limits,
default; audited; per tenant), and demo plans with room for the documented 10,000 bulk."""

from __future__ import annotations

from sqlalchemy import select


def _plan(app, site, **spec):
    from app.billing.plans import create_plan
    from app.extensions import db
    from tenants.context import activate

    with app.app_context(), activate(site.info):
        plan = create_plan(**spec)
        db.session.commit()
        return plan.id


def test_a_reseller_changes_its_plan_and_the_change_is_audited(app, acme, globex, api_caller):
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants.context import activate

    free = _plan(app, acme, code="free", name="Free", is_default=True, licenses=250)
    pro = _plan(app, acme, code="pro", name="Pro", stripe_price_id="price_pro", licenses=10)
    theirs = _plan(app, globex, code="free", name="Free", is_default=True, licenses=250)
    reseller = api_caller(acme, role="RESELLER")
    changed = acme.client.patch(f"/api/v1/billing/plans/{free}", headers=reseller.headers,
                                json={"name": "Community", "licenses": 20_000, "agents": None})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    body = changed.get_json()
    assert (body["name"], body["licenses"], body["is_default"]) == ("Community", 20_000, True)
    # Making another plan the default takes the role from the old one.
    moved = acme.client.patch(f"/api/v1/billing/plans/{pro}", headers=reseller.headers,
                              json={"is_default": True})
    assert moved.status_code == 200 and moved.get_json()["is_default"] is True
    plans = {p["code"]: p["is_default"] for p in acme.client.get(
        "/api/v1/billing/plans", headers=reseller.headers).get_json()}
    assert plans == {"free": False, "pro": True}
    # Bad input is a clear 4xx; another tenant's plan is not found.
    assert acme.client.patch(f"/api/v1/billing/plans/{pro}", headers=reseller.headers,
                             json={"licenses": -1}).status_code == 422
    assert acme.client.patch(f"/api/v1/billing/plans/{pro}", headers=reseller.headers,
                             json={"licenses": 2**31}).status_code == 422
    assert acme.client.patch(f"/api/v1/billing/plans/{theirs}", headers=reseller.headers,
                             json={"name": "Mine"}).status_code == 404
    customer = api_caller(acme, role="USER")
    assert acme.client.patch(f"/api/v1/billing/plans/{pro}", headers=customer.headers,
                             json={"name": "x"}).status_code == 403
    with app.app_context(), activate(acme.info):
        events = list(db.session.scalars(select(AuditEvent).where(
            AuditEvent.action.in_(("plan_updated", "plan_changed")))))
        # One entry per plan changed: the renamed free plan, then the default moving
        # (from free to pro); the refused and foreign changes none.
        assert sorted((e.target_id, tuple(e.details["fields"])) for e in events) == sorted([
            (str(free), ("licenses", "name")), (str(free), ("is_default",)),
            (str(pro), ("is_default",))])
        renamed = next(e for e in events if "name" in e.details["fields"])
        assert renamed.details["licenses"] == 20_000
        assert renamed.details["before"] == {"licenses": 250, "name": "Free"}
    with app.app_context(), activate(globex.info):
        from app.billing.models import Plan

        assert db.session.get(Plan, theirs).name == "Free"


def test_the_demo_plans_have_room_for_the_documented_bulk_of_10000(app, platform, acme,
                                                                   globex):
    from app.billing.demo import seed_demo_plans
    from app.billing.limits import ensure_room, limits_for
    from app.extensions import db
    from tenants.context import activate

    with app.app_context():
        seed_demo_plans(platform.info, acme.info)
        db.session.commit()
    with app.app_context(), activate(acme.info):
        limits = limits_for(None)
        assert limits.licenses is None or limits.licenses >= 10_000
        ensure_room("licenses", count=10_000)  # raises PlanLimitReached otherwise
