"""Plan limits on counts: agents, API keys, customers and licenses, in two tenants.

The test configuration raises the built-in free plan (tests/conftest.py); these tests set
real limits through plans: a tenant's default plan (its customers' free plan), the
platform's default plan (every reseller's free plan), and paid plans bought through the
fake Stripe.
"""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from tenants.context import activate
from tests import billing_support
from tests.billing_support import add_plan, buy, client_for, connect, dispose, post_event
from tests.conftest import login

fake_stripe = billing_support.fake_stripe
PASSWORD = "correct horse battery"


def _default_plan(app, site, name: str, **limits):
    """``site``'s default plan: what its subscribers-to-be get (customers, or resellers when
    ``site`` is the platform)."""
    from app.billing.plans import create_plan

    with app.app_context(), activate(site.info):
        plan = create_plan(name.lower().replace(" ", "-"), name, is_default=True, **limits)
        db.session.commit()
        return plan.id


def _count(app, site, model, *criteria) -> int:
    with app.app_context(), activate(site.info):
        return db.session.scalar(select(func.count()).select_from(model).where(*criteria))


def _refusal(response, quota: str, limit: int, used: int, plan: str, account: str,
             requested: int = 1) -> dict:
    assert response.status_code == 402, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "plan_limit_reached"
    details = dict(error["details"])
    assert details.pop("plan_id")
    assert details == {"quota": quota, "limit": limit, "used": used, "requested": requested,
                       "plan": plan, "account": account}
    assert f"{plan} plan allows {limit}" in error["message"]
    return error


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def _token(site, email: str) -> dict[str, str]:
    pair = site.client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert pair.status_code == 200, pair.get_data(as_text=True)
    return {"Authorization": f"Bearer {pair.get_json()['access_token']}"}


# --- agents ----------------------------------------------------------------------------------

def _new_agent(site, caller, slug: str):
    return site.client.post("/api/v1/agents", headers=caller.headers,
                            json={"name": slug.title(), "slug": slug})


def test_a_customers_agents_stop_at_its_plan_and_deleting_one_frees_room(
        app, platform, acme, globex, api_caller):
    _default_plan(app, acme, "Basic", agents=2)
    _default_plan(app, globex, "Basic", agents=2)
    ann = api_caller(acme, email="ann@example.com")
    bob = api_caller(acme, email="bob@example.com")
    gus = api_caller(globex, email="ann@example.com")
    first = _new_agent(acme, ann, "one")
    assert first.status_code == 201 and _new_agent(acme, ann, "two").status_code == 201
    error = _refusal(_new_agent(acme, ann, "three"), "agents", 2, 2, "Basic", "customer")
    assert "Delete an agent or upgrade the plan" in error["message"]
    # The limit is each customer's own, and each tenant's own: ann at hers stops nobody else.
    assert _new_agent(acme, bob, "bobs").status_code == 201
    assert _new_agent(globex, gus, "one").status_code == 201
    assert _new_agent(globex, gus, "two").status_code == 201
    # Deleting frees the place.
    deleted = acme.client.delete(f"/api/v1/agents/{first.get_json()['id']}", headers=ann.headers)
    assert deleted.status_code == 204
    assert _new_agent(acme, ann, "three").status_code == 201
    # The builder page says so above the form it keeps, not a 500.
    login(acme, "ann@example.com")
    page = acme.client.post("/agents", data={
        "name": "Four", "model": "gpt-4o-mini", "system_prompt": "Hi", "variables": "[]",
        "csrf_token": _csrf(acme.client.get("/agents").get_data(as_text=True))},
        follow_redirects=True)
    assert page.status_code == 422
    assert "Your Basic plan allows 2 agents and 2 are in use" in page.get_data(as_text=True)
    assert 'value="Four"' in page.get_data(as_text=True)


def test_reseller_templates_count_against_its_platform_plan_not_its_customers(
        app, platform, acme, globex, api_caller):
    _default_plan(app, platform, "Reseller Free", agents=1)
    owner = api_caller(acme, role="RESELLER")
    ann = api_caller(acme, email="ann@example.com")
    globex_owner = api_caller(globex, role="RESELLER")
    assert _new_agent(acme, owner, "template").status_code == 201
    _refusal(_new_agent(acme, owner, "another"), "agents", 1, 1, "Reseller Free", "tenant")
    # Customers' agents are theirs (here on the built-in free plan of the test settings).
    assert _new_agent(acme, ann, "mine").status_code == 201
    assert _new_agent(globex, globex_owner, "template").status_code == 201


# --- API keys --------------------------------------------------------------------------------

def _new_key(site, headers, name: str = "widget"):
    return site.client.post("/api/v1/api-keys", headers=headers,
                            json={"name": name, "scopes": ["agents:execute"]})


def test_api_keys_count_per_customer_and_for_the_resellers_staff_together(
        app, platform, acme, globex, make_user):
    _default_plan(app, acme, "Basic", api_keys=1)
    _default_plan(app, platform, "Reseller Free", api_keys=2)
    for email, role in (("ann@example.com", "USER"), ("bob@example.com", "USER"),
                        ("owner@acme.example", "RESELLER"), ("ops@acme.example", "RESELLER")):
        make_user(acme, email, role=role)
    make_user(globex, "ann@example.com")
    make_user(platform, "admin@albedo.example", role="ADMIN")
    ann = _token(acme, "ann@example.com")
    first = _new_key(acme, ann)
    assert first.status_code == 201
    error = _refusal(_new_key(acme, ann), "api_keys", 1, 1, "Basic", "customer")
    assert "Revoke a key" in error["message"]
    assert _new_key(acme, _token(acme, "bob@example.com")).status_code == 201
    assert _new_key(globex, _token(globex, "ann@example.com")).status_code == 201
    revoked = acme.client.delete(f"/api/v1/api-keys/{first.get_json()['id']}", headers=ann)
    assert revoked.status_code == 204
    assert _new_key(acme, ann).status_code == 201  # a revoked key no longer counts

    # Staff keys are the reseller's: two staff members share the plan's two keys.
    owner, ops = _token(acme, "owner@acme.example"), _token(acme, "ops@acme.example")
    assert _new_key(acme, owner).status_code == 201 and _new_key(acme, ops).status_code == 201
    _refusal(_new_key(acme, owner), "api_keys", 2, 2, "Reseller Free", "tenant")
    # The platform operator sells plans; its own keys are not counted against them.
    admin = _token(platform, "admin@albedo.example")
    assert all(_new_key(platform, admin, f"k{n}").status_code == 201 for n in range(3))

    # The API keys page shows the refusal on the page.
    login(acme, "ann@example.com")
    html = acme.client.get("/settings/api-keys").get_data(as_text=True)
    page = acme.client.post("/settings/api-keys", data={
        "name": "another", "scopes": ["agents:execute"], "csrf_token": _csrf(html)})
    assert page.status_code < 500
    assert "Your Basic plan allows 1 API key and 1 is in use" in page.get_data(as_text=True)


# --- customers -------------------------------------------------------------------------------

def _sign_up(site, email: str):
    html = site.client.get("/signup").get_data(as_text=True)
    return site.client.post("/signup", data={"email": email, "password": PASSWORD,
                                             "name": "", "csrf_token": _csrf(html)})


def test_customers_count_against_the_resellers_plan_however_they_arrive(
        app, platform, acme, globex, api_caller):
    from app.auth.models import User

    _default_plan(app, platform, "Reseller Free", customers=2)
    owner = api_caller(acme, role="RESELLER")  # staff are not customers
    assert _sign_up(acme, "one@example.com").status_code == 200
    assert _sign_up(acme, "two@example.com").status_code == 200
    full = _sign_up(acme, "three@example.com")
    assert full.status_code == 400
    assert "Acme Agents is not accepting new accounts right now" in full.get_data(as_text=True)
    # A registered email gets the same answer: a full site tells nobody who has an account.
    again = _sign_up(acme, "one@example.com")
    assert again.status_code == 400 and "not accepting new accounts" in again.get_data(
        as_text=True)
    assert _count(app, acme, User, User.role == "USER") == 2
    assert _sign_up(globex, "three@example.com").status_code == 200  # globex is not full

    # OAuth sign-up and the CLI are refused too; the CLI may still add staff.
    from app.auth import oauth
    from app.auth.account import AccountError

    with app.app_context(), activate(acme.info):
        with pytest.raises(AccountError) as refused:
            oauth.sign_in_with(oauth.ProviderProfile("github", "42", "new@example.com", True,
                                                     "New"))
        assert refused.value.code == "signup_unavailable"
        db.session.rollback()
    cli = app.test_cli_runner()
    result = cli.invoke(args=["albedo", "create-user", "acme", "cli@example.com",
                              "--password", PASSWORD])
    assert result.exit_code != 0 and "plan allows 2 customers" in result.output
    staff = cli.invoke(args=["albedo", "create-user", "acme", "staff@acme.example",
                             "--role", "RESELLER", "--password", PASSWORD])
    assert staff.exit_code == 0, staff.output

    # Attaching a license to an email makes no account, so it needs no customer place.
    from tests.licensing_support import make_license

    make_license(app, acme, license_kwargs={"customer_email": "buyer@example.com"})

    # Deactivating a customer frees a place; reactivating (or making staff a customer)
    # needs one.
    users = {u["email"]: u["id"] for u in acme.client.get(
        "/api/v1/users?limit=100", headers=owner.headers).get_json()["items"]}
    off = acme.client.patch(f"/api/v1/users/{users['one@example.com']}",
                            headers=owner.headers, json={"is_active": False})
    assert off.status_code == 200
    assert _sign_up(acme, "three@example.com").status_code == 200
    back = acme.client.patch(f"/api/v1/users/{users['one@example.com']}",
                             headers=owner.headers, json={"is_active": True})
    _refusal(back, "customers", 2, 2, "Reseller Free", "tenant")
    demoted = acme.client.patch(f"/api/v1/users/{users['staff@acme.example']}",
                                headers=owner.headers, json={"role": "USER"})
    _refusal(demoted, "customers", 2, 2, "Reseller Free", "tenant")
    assert _count(app, acme, User, User.role == "USER", User.is_active.is_(True)) == 2


# --- licenses --------------------------------------------------------------------------------

def _policy(site, reseller) -> str:
    product = site.client.post("/api/v1/products", headers=reseller.headers,
                               json={"name": "Pro", "code": "pro", "entitlements": ["chat"]})
    policy = site.client.post("/api/v1/policies", headers=reseller.headers, json={
        "product_id": product.get_json()["id"], "name": "Yearly", "duration_days": 365})
    assert policy.status_code == 201, policy.get_data(as_text=True)
    return policy.get_json()["id"]


def test_licenses_single_and_bulk_never_pass_the_resellers_plan(
        app, platform, acme, globex, api_caller):
    from app.licensing.models import BulkIssue, License
    from jobs.worker import run_worker

    _default_plan(app, platform, "Reseller Free", licenses=5)
    reseller = api_caller(acme, role="RESELLER")
    globex_reseller = api_caller(globex, role="RESELLER")
    policy, globex_policy = _policy(acme, reseller), _policy(globex, globex_reseller)

    def issue(site=acme, caller=reseller, policy_id=policy):
        return site.client.post("/api/v1/licenses", headers=caller.headers,
                                json={"policy_id": policy_id})

    def bulk(count: int):
        return acme.client.post("/api/v1/licenses/bulk", headers=reseller.headers,
                                json={"policy_id": policy, "count": count})

    first = issue()
    assert first.status_code == 201 and issue().status_code == 201
    # A bulk issue that does not fit is refused whole: no job, no license.
    error = _refusal(bulk(4), "licenses", 5, 2, "Reseller Free", "tenant", requested=4)
    assert "4 more do not fit; nothing was created" in error["message"]
    assert _count(app, acme, BulkIssue) == 0 and _count(app, acme, License) == 2
    # One that fits reserves its room at once, before its job has issued anything.
    assert bulk(3).status_code == 202
    _refusal(issue(), "licenses", 5, 5, "Reseller Free", "tenant")
    assert _count(app, acme, License) == 2
    # globex's plan counts globex's licenses only.
    assert all(issue(globex, globex_reseller, globex_policy).status_code == 201
               for _ in range(5))
    run_worker(app, ["default"], burst=True, simple=True)
    assert _count(app, acme, License) == 5
    _refusal(issue(), "licenses", 5, 5, "Reseller Free", "tenant")
    # Revoking frees a place; suspending does not.
    revoked = acme.client.post(f"/api/v1/licenses/{first.get_json()['id']}/revoke",
                               headers=reseller.headers)
    assert revoked.status_code == 200
    assert issue().status_code == 201
    _refusal(issue(), "licenses", 5, 5, "Reseller Free", "tenant")

    # The licenses page shows the refusal as a flash message.
    login(acme, reseller.email)
    html = acme.client.get("/licensing/licenses").get_data(as_text=True)
    page = acme.client.post("/licensing/licenses/bulk", data={
        "policy_id": policy, "count": "2", "csrf_token": _csrf(html)}, follow_redirects=True)
    assert page.status_code == 200
    assert "Your Reseller Free plan allows 5 licenses and 5 are in use" in page.get_data(
        as_text=True)
    assert _count(app, acme, BulkIssue) == 1


# --- paid plans replace the free ones ---------------------------------------------------------

@pytest.fixture
def small_free_app(app, migrated, fake_stripe):
    """Stripe against the fake, and the built-in free plan at its shipped size for agents
    and licenses (1 and 3), smaller than the test configuration's."""
    extra = {"ALBEDO_FREE_PLAN_AGENTS": "1", "ALBEDO_FREE_PLAN_LICENSES": "3"}
    application = create_app(billing_support.stripe_settings(migrated, fake_stripe, **extra))
    yield application
    dispose(application)


def _agent(application, site, user_id, slug: str):
    from app.agents.service import Caller, create_agent

    with application.app_context(), activate(site.info):
        create_agent(Caller(user_id, "USER"), name=slug.title(), slug=slug)
        db.session.commit()


def _license(application, site, policy_id):
    from app.licensing import service

    with application.app_context(), activate(site.info):
        service.issue_license(service.get_policy(policy_id))
        db.session.commit()


def test_plan_limits_change_what_the_quota_checks_allow(
        small_free_app, platform, acme, globex, make_user, fake_stripe):
    from app.billing.limits import PlanLimitReached
    from tests.licensing_support import make_license

    application = small_free_app
    account = connect(application, acme, fake_stripe)
    pro, _ = add_plan(application, acme, fake_stripe, code="pro", agents=3)
    ann = make_user(acme, "ann@example.com")
    gus = make_user(globex, "ann@example.com")
    webhook = client_for(application, platform)

    _agent(application, acme, ann, "one")
    with pytest.raises(PlanLimitReached) as refused:
        _agent(application, acme, ann, "two")
    assert (refused.value.limit, refused.value.details["plan"]) == (1, "Free")
    paid = buy(application, acme, fake_stripe, pro, ann, "ann@example.com", account)
    event = fake_stripe.event("checkout.session.completed", paid["session"], account=account)
    assert post_event(webhook, event).status_code == 200
    _agent(application, acme, ann, "two")
    _agent(application, acme, ann, "three")
    with pytest.raises(PlanLimitReached) as refused:
        _agent(application, acme, ann, "four")
    assert (refused.value.limit, refused.value.details["plan"]) == (3, "Pro")
    _agent(application, globex, gus, "one")  # globex's customer: the free plan, its own count
    with pytest.raises(PlanLimitReached):
        _agent(application, globex, gus, "two")
    # Cancelled: back on the free plan. Existing agents stay; no new one fits.
    fake_stripe.update_subscription(paid["subscription"]["id"], account, status="canceled")
    gone = fake_stripe.event("customer.subscription.deleted", paid["subscription"],
                             account=account)
    assert post_event(webhook, gone).status_code == 200
    with pytest.raises(PlanLimitReached) as refused:
        _agent(application, acme, ann, "four")
    assert (refused.value.limit, refused.value.used) == (1, 3)

    # A reseller's licenses follow its subscription to a platform plan.
    policy = make_license(application, acme).policy_id
    _license(application, acme, policy)
    _license(application, acme, policy)
    with pytest.raises(PlanLimitReached):
        _license(application, acme, policy)
    agency, _ = add_plan(application, platform, fake_stripe, code="agency", amount=9900,
                         licenses=5)
    paid = buy(application, acme, fake_stripe, agency, None, "owner@acme.example", None)
    assert post_event(webhook, fake_stripe.event("invoice.paid", paid["invoice"])
                      ).status_code == 200
    _license(application, acme, policy)
    _license(application, acme, policy)
    with pytest.raises(PlanLimitReached) as refused:
        _license(application, acme, policy)
    assert (refused.value.limit, refused.value.details["plan"]) == (5, "Agency")
    globex_policy = make_license(application, globex).policy_id  # globex: still on free
    _license(application, globex, globex_policy)
    _license(application, globex, globex_policy)
    with pytest.raises(PlanLimitReached):
        _license(application, globex, globex_policy)


# --- the free plan's settings and the demo ----------------------------------------------------

def _without_free_plan_settings(migrated, **extra):
    kept = {k: v for k, v in migrated.extra.items() if not k.startswith("ALBEDO_FREE_PLAN_")}
    return migrated.with_overrides(extra={**kept, **extra})


def test_the_built_in_free_plan_is_configurable_and_validated(app, migrated):
    from app.billing.config import BillingConfigError
    from app.billing.limits import FREE_PLAN, free_plan

    shipped = create_app(_without_free_plan_settings(migrated))
    with shipped.app_context():
        assert free_plan() == FREE_PLAN
        assert (FREE_PLAN.agents, FREE_PLAN.customers, FREE_PLAN.licenses,
                FREE_PLAN.api_keys, FREE_PLAN.executions_per_month) == (1, 3, 3, 1, 100)
    dispose(shipped)
    configured = create_app(_without_free_plan_settings(
        migrated, ALBEDO_FREE_PLAN_AGENTS="5", ALBEDO_FREE_PLAN_API_KEYS="0"))
    with configured.app_context():
        assert (free_plan().agents, free_plan().api_keys, free_plan().customers) == (5, 0, 3)
    dispose(configured)
    with pytest.raises(BillingConfigError, match="ALBEDO_FREE_PLAN_LICENSES must be a whole"):
        create_app(_without_free_plan_settings(migrated, ALBEDO_FREE_PLAN_LICENSES="lots"))


def test_the_demo_starts_with_room_to_try_things(app, migrated):
    from app.agents.service import Caller, create_agent
    from app.auth.api_keys import create_key
    from app.auth.service import find_by_email
    from app.billing.limits import PlanLimitReached, limits_for
    from app.billing.models import Plan
    from app.cli import DEMO, seed_demo
    from tenants.service import get_by_slug, info_for

    demo = create_app(_without_free_plan_settings(migrated))  # the shipped free plan
    with demo.app_context():
        seed_demo()
        seed_demo()  # idempotent, plans included
        acme = info_for(get_by_slug("acme"))
        with activate(acme):
            customer = find_by_email(DEMO["customer"][0])
            owner = find_by_email(DEMO["reseller"][0])
            assert limits_for(None).plan_name == "Starter"
            for n in range(3):  # more than the built-in free plan's one agent
                create_agent(Caller(customer.id, "USER"), name=f"Mine {n}")
                create_agent(Caller(owner.id, "RESELLER"), name=f"Template {n}")
            for n in range(2):
                create_key(customer, f"key {n}", ["agents:execute"])
                create_key(owner, f"key {n}", ["agents:execute"])
            db.session.commit()
            with pytest.raises(PlanLimitReached):
                create_agent(Caller(customer.id, "USER"), name="One too many")
            db.session.rollback()
        with activate(info_for(get_by_slug("platform"))):
            assert db.session.scalar(select(func.count()).select_from(Plan)) == 1
    dispose(demo)


# --- concurrency -----------------------------------------------------------------------------

def _race(application, site, attempts: int, create) -> list[str]:
    """``attempts`` threads create at once; returns their sorted outcomes."""
    from app.billing.limits import PlanLimitReached

    barrier = threading.Barrier(attempts)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with application.app_context(), activate(site.info):
            barrier.wait(30)
            try:
                create(n)
                db.session.commit()
                outcome = "created"
            except PlanLimitReached:
                db.session.rollback()
                outcome = "refused"
            finally:
                db.session.remove()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return sorted(outcomes)


def test_concurrent_creates_never_pass_the_limit(app, platform, acme, globex, make_user):
    """The owner's row is locked before counting (the tenant's for licenses, the customer's
    for its agents), so twelve creates at once at the boundary add exactly what fits."""
    from app.agents.models import Agent
    from app.agents.service import Caller, create_agent
    from app.licensing import service
    from app.licensing.models import License
    from tests.licensing_support import make_license

    _default_plan(app, platform, "Reseller Free", licenses=4)
    _default_plan(app, acme, "Basic", agents=2)
    policy = make_license(app, acme).policy_id  # also makes the signing key
    make_license(app, globex)
    ann = make_user(acme, "ann@example.com")

    licenses = _race(app, acme, 12,
                     lambda n: service.issue_license(service.get_policy(policy)))
    assert licenses == ["created"] * 3 + ["refused"] * 9
    assert _count(app, acme, License) == 4 and _count(app, globex, License) == 1
    agents = _race(app, acme, 12, lambda n: create_agent(Caller(ann, "USER"), name=f"A{n}"))
    assert agents == ["created"] * 2 + ["refused"] * 10
    assert _count(app, acme, Agent) == 2



def test_the_create_routes_document_the_402(app, acme):
    spec = acme.client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/agents", "/api/v1/licenses", "/api/v1/licenses/bulk",
                 "/api/v1/api-keys"):
        assert "402" in spec["paths"][path]["post"]["responses"], path
