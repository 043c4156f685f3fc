"""A sweep over every remembered read (app/api/lane/remembered.py ``declared()``): on two
tenants, each declared rule has a concrete path whose answer has a row of that tenant; the
lane answers it from memory, byte for byte the route's answer with the lane off, and the
other tenant's caller gets its own answer (never acme's rows) or a 404 for acme's object.

API keys throughout (an access token would expire if a test moved the clock)."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from app.api.lane import remembered
from tests.lane_support import _same, lane  # noqa: F401  (fixtures)
from tests.licensing_support import make_license, settle
from tests.rebilling_support import charge_once, set_book
from tests.widget_support import make_widget

# A minute and a half per database on two cores: CI runs it once, on PostgreSQL.
pytestmark = pytest.mark.walk

CUSTOMER = "ann@example.com"  # the same email on both tenants
HOOK_URL = "http://127.0.0.1:9/hook"  # allowed by ALBEDO_SSRF_ALLOW; never called


@pytest.fixture
def app(app, migrated):
    """The test's empty database, in an app with a platform provider (executions can be
    started) and the receiver's address allowed for webhooks; nothing is sent to either."""
    from app import create_app

    application = create_app(migrated.with_overrides(extra={
        **migrated.extra, "ALBEDO_SSRF_ALLOW": "127.0.0.1:9",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-platform"}))
    yield application
    with application.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


def _created(answer, status: int = 201) -> dict:
    assert answer.status_code == status, answer.get_data(as_text=True)
    return answer.get_json()


def _tenant_data(app, site, api_caller, operator: tuple) -> SimpleNamespace:
    """A reseller and a customer of ``site``, and at least one row of every declared read."""
    from sqlalchemy import select

    from app.agents import executions
    from app.agents.models import Conversation, Execution
    from app.agents.service import Caller, get_agent
    from app.billing.models import ConnectAccount, Subscription
    from app.billing.plans import create_plan
    from app.billing.rebilling_models import LedgerEntry, Price
    from app.extensions import db
    from app.licensing import bulk
    from app.licensing.tasks import flush_validations
    from tenants.context import activate

    slug = site.info.slug
    client = site.client
    reseller = api_caller(site, role="RESELLER", email=f"owner@{slug}.example")
    customer = api_caller(site, role="USER", email=CUSTOMER)
    r, c = reseller.headers, customer.headers
    d = SimpleNamespace(site=site, reseller=r, customer=c, reseller_key=str(reseller.key_id),
                        customer_id=str(customer.user_id), slug=slug)

    d.domain = f"agents.{slug}-shop.example"
    platform, operator_headers = operator
    _created(platform.client.post(f"/api/v1/platform/resellers/{site.info.id}/domains",
                                  headers=operator_headers, json={"hostname": d.domain}))
    _created(client.put("/api/v1/agents/provider", headers=r, json={
        "api_key": f"sk-provider-key-{slug}", "base_url": "http://127.0.0.1:9/v1"}), 200)
    # Webhooks first, so the license issued below is an event owed to both.
    d.endpoint = _created(client.post("/api/v1/webhooks/endpoints", headers=r, json={
        "url": HOOK_URL, "event_types": ["license.created"]}))["id"]
    d.hook = _created(client.post("/api/v1/hooks", headers=r, json={
        "target_url": HOOK_URL, "event": "license.created"}))["id"]
    d.test_delivery = _created(client.post(f"/api/v1/webhooks/endpoints/{d.endpoint}/test",
                                           headers=r), 202)["id"]

    own = _created(client.post("/api/v1/webhooks/endpoints", headers=c, json={
        "url": HOOK_URL, "event_types": ["license.created"]}))["id"]
    d.customer_delivery = _created(client.post(f"/api/v1/webhooks/endpoints/{own}/test",
                                               headers=c), 202)["id"]

    d.agent = _created(client.post("/api/v1/agents", headers=c, json={
        "name": f"{slug} helper", "slug": f"{slug}-helper",
        "version": {"model": "gpt-4o-mini", "system_prompt": f"You help {slug}."}}))["id"]
    d.widget = make_widget(client, r, slug=f"{slug}-widget")["id"]
    d.invitation = _created(client.post("/api/v1/invitations", headers=r, json={
        "email": f"new@{slug}.example", "role": "USER"}))["id"]

    # An execution with a conversation of two earlier turns, finished as a worker would.
    with app.app_context(), activate(site.info):
        caller = Caller(customer.user_id, "USER")
        execution, _ = executions.start_execution(
            caller, get_agent(caller, d.agent), input="hello",
            history=[("user", "earlier"), ("assistant", "an earlier answer")])
        d.execution, d.conversation = str(execution.id), str(execution.conversation_id)
        row = db.session.get(Execution, execution.id)
        row.status, row.output = "succeeded", f"{slug} answer"
        row.prompt_tokens, row.completion_tokens = 5, 7
        row.started_at = row.finished_at = row.created_at
        assert db.session.get(Conversation, execution.conversation_id) is not None
        db.session.commit()

    # Licensing: a license sold to the customer, a machine, a validation, a bulk issue.
    issued = make_license(app, site, code=f"{slug}-pro", floating=True, max_machines=3,
                          license_kwargs={"customer_email": CUSTOMER})
    d.license, d.policy, d.product = str(issued.id), str(issued.policy_id), str(issued.product_id)
    _created(client.post("/api/v1/machines", json={"fingerprint": f"{slug}-fp"},
                         headers={"Authorization": f"License {issued.key}"}))
    _created(client.post("/api/v1/licenses/validate", json={"key": issued.key}), 200)
    settle(app)
    with app.app_context(), activate(site.info):
        assert flush_validations()["log_entries"] == 1  # the log's batch, as its job does
    # The customer's first list claims the license sold to their email.
    claimed = _created(client.get("/api/v1/licenses", headers=c), 200)["items"]
    assert [item["id"] for item in claimed] == [d.license]
    d.bulk = _created(client.post("/api/v1/licenses/bulk", headers=r, json={
        "policy_id": d.policy, "count": 2, "name_prefix": slug}), 202)["id"]
    with app.app_context(), activate(site.info):
        assert bulk.run(uuid.UUID(d.bulk)).status == "done"
        db.session.commit()
    # The license's event was owed to the endpoint: a real delivery.
    deliveries = _created(client.get("/api/v1/webhooks/deliveries", headers=r), 200)["items"]
    d.delivery = next(item["id"] for item in deliveries if item["id"] != d.test_delivery)

    # Billing: a plan, a connected account, the customer's subscription, a price book and a
    # charge in the usage ledger.
    set_book(app, site, kind="execution", per_execution_minor=100)
    charge_once(app, site, customer.user_id)
    with app.app_context(), activate(site.info):
        plan = create_plan("pro", f"{slug} Pro", stripe_price_id=f"price_{slug}_pro",
                           amount_minor=1900)
        d.plan = str(plan.id)
        db.session.add(ConnectAccount(stripe_account_id=f"acct_{slug}", charges_enabled=True,
                                      payouts_enabled=True, details_submitted=True))
        db.session.add(Subscription(
            stripe_subscription_id=f"sub_{slug}", stripe_customer_id=f"cus_{slug}",
            stripe_account_id=f"acct_{slug}", user_id=customer.user_id,
            stripe_price_id=f"price_{slug}_pro", status="active"))
        d.price = str(db.session.scalars(select(Price.id)).one())
        d.ledger = str(db.session.scalars(select(LedgerEntry.id)).one())
        db.session.commit()
    return d


@pytest.fixture
def sweep(app, platform, acme, globex, api_caller):
    """Every declared read's rows on acme and globex, and the platform's operator."""
    operator = api_caller(platform, role="ADMIN", email="operator@platform.example").headers
    data = {site.info.slug: _tenant_data(app, site, api_caller, (platform, operator))
            for site in (acme, globex)}
    for d in data.values():
        d.operator = operator
        d.platform = platform
        d.tenant = str(d.site.info.id)
    return data


@dataclass(frozen=True)
class Case:
    """Who reads the rule, on which path, and a text of the tenant's own row its answer
    holds (None: an answer of the code alone)."""
    caller: str
    path: Callable[[SimpleNamespace], str]
    row: Callable[[SimpleNamespace], str] | None
    operator: bool = False  # read on the platform's host by its operator


def _r(path, row=None):
    return Case("reseller", path, row)


def _c(path, row=None):
    return Case("customer", path, row)


def _op(path, row=None):
    return Case("operator", path, row, operator=True)


# A rule read by more than one kind of caller (a caller whose answer reads other tables, or
# reads across tenants) has a case for each.
CASES: dict[str, Case | tuple[Case, ...]] = {
    # identity
    "/api/v1/api-keys": _r(lambda d: "/api/v1/api-keys", lambda d: d.reseller_key),
    "/api/v1/api-keys/<uuid:key_id>": _r(lambda d: f"/api/v1/api-keys/{d.reseller_key}",
                                         lambda d: d.reseller_key),
    "/api/v1/invitations": _r(lambda d: "/api/v1/invitations", lambda d: d.invitation),
    "/api/v1/invitations/<uuid:invitation_id>": _r(
        lambda d: f"/api/v1/invitations/{d.invitation}", lambda d: d.invitation),
    "/api/v1/audit-events": (
        _r(lambda d: "/api/v1/audit-events", lambda d: d.invitation),
        # The operator reads every tenant's log: one tenant's, by its slug.
        _op(lambda d: f"/api/v1/audit-events?tenant={d.slug}", lambda d: d.invitation)),
    # agents
    "/api/v1/agents/<uuid:agent_id>/versions": _c(
        lambda d: f"/api/v1/agents/{d.agent}/versions", lambda d: d.slug),
    "/api/v1/agents/<uuid:agent_id>/versions/<number>": _c(
        lambda d: f"/api/v1/agents/{d.agent}/versions/1", lambda d: d.slug),
    "/api/v1/agents/provider": _r(lambda d: "/api/v1/agents/provider", lambda d: d.slug[-4:]),
    # One customer's use of one agent: the filters read the customer and the agent.
    "/api/v1/agents/usage": _r(
        lambda d: f"/api/v1/agents/usage?group_by=customer&customer_id={d.customer_id}"
                  f"&agent_id={d.agent}", lambda d: d.customer_id),
    "/api/v1/executions": _c(lambda d: "/api/v1/executions", lambda d: d.execution),
    "/api/v1/executions/<uuid:execution_id>": _c(
        lambda d: f"/api/v1/executions/{d.execution}", lambda d: d.execution),
    "/api/v1/conversations/<uuid:conversation_id>": _c(
        lambda d: f"/api/v1/conversations/{d.conversation}", lambda d: d.conversation),
    "/api/v1/openai/models": _c(lambda d: "/api/v1/openai/models",
                                lambda d: f"{d.slug}-helper"),
    # billing
    "/api/v1/billing/connect": _r(lambda d: "/api/v1/billing/connect",
                                  lambda d: f"acct_{d.slug}"),
    "/api/v1/billing/plans": _c(lambda d: "/api/v1/billing/plans", lambda d: d.plan),
    "/api/v1/billing/prices": _r(lambda d: "/api/v1/billing/prices", lambda d: d.price),
    "/api/v1/billing/ledger": _r(lambda d: "/api/v1/billing/ledger", lambda d: d.ledger),
    "/api/v1/billing/margins": _r(lambda d: "/api/v1/billing/margins?group_by=customer",
                                  lambda d: d.customer_id),
    "/api/v1/billing/spending": _c(lambda d: "/api/v1/billing/spending",
                                   lambda d: d.customer_id),
    "/api/v1/billing/customers/<uuid:user_id>/spending": _r(
        lambda d: f"/api/v1/billing/customers/{d.customer_id}/spending",
        lambda d: d.customer_id),
    "/api/v1/billing/subscription": (
        _c(lambda d: "/api/v1/billing/subscription", lambda d: f"price_{d.slug}_pro"),
        _r(lambda d: "/api/v1/billing/subscription")),  # the tenant's own, to the platform
    # integrations
    "/api/v1/webhooks/endpoints/<endpoint_id>": _r(
        lambda d: f"/api/v1/webhooks/endpoints/{d.endpoint}", lambda d: d.endpoint),
    # A customer sees the deliveries of its own endpoints and hooks.
    "/api/v1/webhooks/deliveries": (
        _r(lambda d: "/api/v1/webhooks/deliveries", lambda d: d.delivery),
        _c(lambda d: "/api/v1/webhooks/deliveries", lambda d: d.customer_delivery)),
    "/api/v1/webhooks/deliveries/<delivery_id>": (
        _r(lambda d: f"/api/v1/webhooks/deliveries/{d.delivery}", lambda d: d.delivery),
        _c(lambda d: f"/api/v1/webhooks/deliveries/{d.customer_delivery}",
           lambda d: d.customer_delivery)),
    "/api/v1/webhooks/event-types": _r(lambda d: "/api/v1/webhooks/event-types"),
    "/api/v1/hooks": _r(lambda d: "/api/v1/hooks", lambda d: d.hook),
    "/api/v1/hooks/samples/<event>": _r(lambda d: "/api/v1/hooks/samples/license.created",
                                        lambda d: d.license),
    # licensing
    "/api/v1/licenses": _c(lambda d: "/api/v1/licenses", lambda d: d.license),
    "/api/v1/licenses/<uuid:license_id>": _c(lambda d: f"/api/v1/licenses/{d.license}",
                                             lambda d: d.license),
    "/api/v1/licenses/<uuid:license_id>/machines": _r(
        lambda d: f"/api/v1/licenses/{d.license}/machines", lambda d: f"{d.slug}-fp"),
    "/api/v1/licenses/bulk/<uuid:bulk_id>": _r(lambda d: f"/api/v1/licenses/bulk/{d.bulk}",
                                               lambda d: d.bulk),
    "/api/v1/licenses/validations": _r(lambda d: "/api/v1/licenses/validations",
                                       lambda d: d.license),
    "/api/v1/policies": _r(lambda d: "/api/v1/policies", lambda d: d.policy),
    "/api/v1/policies/<uuid:policy_id>": _r(lambda d: f"/api/v1/policies/{d.policy}",
                                            lambda d: d.policy),
    # widget
    "/api/v1/widget/keys": _r(lambda d: "/api/v1/widget/keys", lambda d: d.widget),
    "/api/v1/widget/keys/<uuid:key_id>": _r(lambda d: f"/api/v1/widget/keys/{d.widget}",
                                            lambda d: d.widget),
    # tenants
    "/api/v1/tenant/domains": _r(lambda d: "/api/v1/tenant/domains", lambda d: d.domain),
    "/api/v1/platform/resellers": _op(lambda d: "/api/v1/platform/resellers",
                                      lambda d: d.tenant),
    "/api/v1/platform/resellers/<uuid:tenant_id>": _op(
        lambda d: f"/api/v1/platform/resellers/{d.tenant}", lambda d: d.tenant),
    "/api/v1/platform/resellers/<uuid:tenant_id>/users": _op(
        lambda d: f"/api/v1/platform/resellers/{d.tenant}/users", lambda d: d.customer_id),
    "/api/v1/platform/resellers/<uuid:tenant_id>/invitations": _op(
        lambda d: f"/api/v1/platform/resellers/{d.tenant}/invitations",
        lambda d: d.invitation),
}

# Declared reads whose answers cannot be remembered for a reason a declaration cannot fix
# (rule: reason). Each is still read on both tenants and checked against the route.
NOT_REMEMBERED: dict[str, str] = {}


def _remembered_or_not(lane, site, path: str, headers: dict, must: bool, caplog):
    """The answer from memory, byte for byte the route's (``must``), else the route's."""
    for _ in range(4):
        before = lane.answered
        fast = site.client.get(path, headers=headers)
        assert fast.status_code == 200, (path, fast.get_data(as_text=True))
        if lane.answered == before + 1:
            break
    if must:
        assert lane.answered == before + 1, f"{path} was not answered from memory: {caplog.text}"
    with lane.off():
        reference = site.client.get(path, headers=headers)
    if lane.answered == before + 1:
        _same(fast, reference)
    else:
        assert fast.get_data() == reference.get_data()
    return fast.get_data(as_text=True)


def _ids(text: str) -> set[str]:
    return set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text))


@pytest.mark.parametrize("rule", sorted(CASES))
def test_every_declared_read_is_remembered_on_two_tenants(lane, sweep, rule, caplog, at):
    from app import clock

    # One instant for the whole comparison: an answer that moves with the clock (an API
    # key's last use, noted once a second; its answers stand a second at most) is otherwise
    # the route's of a second ago, not of the reference call with the lane off.
    at(clock.now())
    caplog.set_level(logging.WARNING, "app.api.lane.remembered")
    cases = CASES[rule] if isinstance(CASES[rule], tuple) else (CASES[rule],)
    for case in cases:
        _sweep_one(lane, sweep, rule, case, rule not in NOT_REMEMBERED, caplog)


def _sweep_one(lane, sweep, rule: str, case: Case, must: bool, caplog) -> None:
    answers = {}
    for name, d in sweep.items():
        site = d.platform if case.operator else d.site
        headers = getattr(d, case.caller)
        answers[name] = _remembered_or_not(lane, site, case.path(d), headers, must, caplog)
        if case.row is not None:
            assert case.row(d) in answers[name], f"{name}: no row of its own in {rule}"
    acme, globex = sweep["acme"], sweep["globex"]
    # globex's answer holds none of acme's rows (the operator's list of resellers is every
    # tenant's, by design).
    if not {spec.rule: spec for spec in remembered.declared()}[rule].tables:
        assert answers["acme"] == answers["globex"]  # an answer of the code alone
    elif rule != "/api/v1/platform/resellers":
        assert case.row is None or case.row(acme) not in answers["globex"]
        leaked = _ids(answers["acme"]) & _ids(answers["globex"])
        assert not leaked - _shared(sweep), leaked
    # acme's object, asked for by globex's caller on globex: the route's 404, never
    # remembered; a platform read, asked for by a reseller: refused.
    platform_read = rule.startswith("/api/v1/platform/")
    outsider = globex.reseller if platform_read or case.operator else getattr(globex,
                                                                              case.caller)
    path = case.path(acme)
    if platform_read or path != case.path(globex):
        before = lane.answered
        for _ in range(3):
            answer = globex.site.client.get(path, headers=outsider)
            text = answer.get_data(as_text=True)
            assert case.row is None or case.row(acme) not in text, (path, text)
            if case.operator and not platform_read:
                # The operator's filter, from a reseller: its own tenant's answer, never
                # acme's rows.
                assert answer.status_code == 200, (path, text)
                assert not (_ids(answers["acme"]) - _shared(sweep)) & _ids(text)
            else:
                assert answer.status_code in (403, 404), (path, text)
        if not case.operator or platform_read:
            assert lane.answered == before


def _shared(sweep) -> set[str]:
    """Ids every tenant's answers may name: none but the platform's own."""
    return {str(sweep["acme"].platform.info.id)}


def test_the_sweep_covers_every_declared_read():
    declared = {spec.rule for spec in remembered.declared()}
    assert declared == set(CASES), (
        f"without a sweep case: {sorted(declared - set(CASES))}; "
        f"no longer declared: {sorted(set(CASES) - declared)}")
    assert set(NOT_REMEMBERED) <= declared
