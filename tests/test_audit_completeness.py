"""Audit completeness (issue 16, item 6): every state-changing operation of the OpenAPI
document writes an audit entry naming its actor, tenant and target with a readable summary
and no secret, unless it is excused below with a true reason.

The walk is driven by the document: an operation that appears there with neither a walk
step nor an excuse fails, and so does a step or excuse for an operation that is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests import audit_walk_support, billing_support
from tests.audit_walk_support import (
    Call,
    World,
    assert_audited,
    audit_ids,
    mutating_operations,
    new_entries,
    secrets_in,
    uncovered,
)
from tests.fakes import receiver as receivers

# Every route is exercised with a fresh app: minutes of work, so CI runs it once (on
# PostgreSQL); `make test` runs it too.
pytestmark = pytest.mark.walk

fake_stripe = billing_support.fake_stripe
receiver = receivers.receiver
app, world = audit_walk_support.app, audit_walk_support.world

# Operations that write no audit entry, and why. Each reason must stay true.
NOT_AUDITED: dict[str, str] = {
    "POST /api/v1/auth/refresh": "session upkeep: spends the caller's own refresh token for "
                                 "a new pair; the sign-in that began the session is audited",
    "POST /api/v1/auth/logout": "ends the caller's own session (its refresh tokens); nothing "
                                "of the tenant changes",
    "POST /api/v1/agents/{agent_id}/executions": "an execution is its own record (who, "
                                                 "when, tokens, outcome) and is priced in "
                                                 "the usage ledger",
    "POST /api/v1/openai/chat/completions": "OpenAI-compatible executions: recorded as "
                                            "executions and in the usage ledger",
    "POST /api/v1/executions/{execution_id}/cancel": "the execution row records its "
                                                     "cancellation (status and time)",
    "POST /api/v1/widget/embed/{key}/token": "anonymous visitor traffic on a published "
                                             "widget: a short-lived token, nothing stored",
    "POST /api/v1/widget/embed/{key}/chat": "visitor chats are executions, recorded as "
                                            "such and in the usage ledger",
    "POST /api/v1/licenses/validate": "high-volume machine traffic (license key): counted "
                                      "in metrics and the validation records",
    "POST /api/v1/licenses/check-in": "high-volume machine traffic (license key): the "
                                      "license row keeps its last check-in",
    "POST /api/v1/licenses/executions": "high-volume machine traffic (license key): counted "
                                        "against the license's execution allowance",
    "POST /api/v1/machines": "the licensed program activates its own seat with its license "
                             "key: the machine row records it (fingerprint, time)",
    "POST /api/v1/machines/{machine_id}/heartbeat": "high-volume machine traffic: the "
                                                    "machine row keeps its last heartbeat",
    "DELETE /api/v1/machines/{machine_id}": "the licensed program releases its own seat "
                                            "with its license key (staff deactivating a "
                                            "machine on the license page is audited)",
    "POST /api/v1/licenses/{license_id}/file": "reads a license into a signed file; "
                                               "nothing changes",
    "POST /api/v1/billing/checkout": "stores nothing: answers a Stripe Checkout address; "
                                     "the purchase arrives as a signed Stripe event",
    "POST /api/v1/billing/credits/checkout": "stores nothing: answers a Stripe Checkout "
                                             "address; the paid top-up arrives as a signed "
                                             "Stripe event and is kept as a credit top-up",
    "POST /api/v1/billing/portal": "stores nothing: answers a Stripe billing portal address",
    "POST /api/v1/billing/stripe/webhook": "Stripe's signed machine traffic: each event is "
                                           "stored once with its outcome",
    "POST /api/v1/webhooks/endpoints/{endpoint_id}/test": "sends a test event: the delivery "
                                                          "is listed with its attempts",
}


# -- the walk: one step per audited operation -------------------------------------------

STEPS: dict[str, Callable[[World], Call]] = {}
VERSION = {"model": "gpt-4o-mini", "system_prompt": "You help."}
PROVIDER_KEY = "sk-provider-secret-1234567890WXYZ"
_Value = Callable[[World], object] | object


def walk(operation: str, path: Callable[[World], str], body: _Value = None,
         actor: str = "owner", site: str = "acme") -> None:
    """Walk ``operation`` at ``path(world)`` with ``body`` (or ``body(world)``), as
    ``actor`` on ``site``; seeds happen inside ``path`` and ``body``."""
    def build(w: World) -> Call:
        at = path(w)
        sent = body(w) if callable(body) else body
        return Call(getattr(w, site), operation.split()[0], at, getattr(w, actor), sent)
    STEPS[operation] = build


def step(operation: str):
    def register(build: Callable[[World], Call]) -> Callable[[World], Call]:
        STEPS[operation] = build
        return build
    return register


def _provider_set(w: World) -> str:
    w.secrets.append(PROVIDER_KEY)
    w.post(w.acme, "/api/v1/agents/provider", w.owner, {"api_key": PROVIDER_KEY}, method="PUT")
    return "/api/v1/agents/provider"


def _published(w: World) -> str:
    agent_id = w.agent()
    w.post(w.acme, f"/api/v1/agents/{agent_id}/versions", w.owner, VERSION)
    return f"/api/v1/agents/{agent_id}/publish"


def _license_action(action: str, before: str | None = None) -> Callable[[World], str]:
    def path(w: World) -> str:
        license_id = w.license(duration_days=30).id
        if before:
            w.post(w.acme, f"/api/v1/licenses/{license_id}/{before}", w.owner)
        return f"/api/v1/licenses/{license_id}/{action}"
    return path


def _with_provider_key(w: World) -> dict:
    w.secrets.append(PROVIDER_KEY)
    return {"api_key": PROVIDER_KEY}


walk("POST /api/v1/agents", lambda w: "/api/v1/agents",
     {"name": "Helper", "slug": "helper", "version": VERSION})
walk("PUT /api/v1/agents/provider", lambda w: "/api/v1/agents/provider", _with_provider_key)
walk("DELETE /api/v1/agents/provider", _provider_set)
walk("PATCH /api/v1/agents/{agent_id}", lambda w: f"/api/v1/agents/{w.agent()}",
     {"name": "Helper Pro"})
walk("DELETE /api/v1/agents/{agent_id}", lambda w: f"/api/v1/agents/{w.agent()}")
walk("POST /api/v1/agents/{agent_id}/publish", _published, {"version": 2})
walk("POST /api/v1/agents/{agent_id}/versions",
     lambda w: f"/api/v1/agents/{w.agent()}/versions", VERSION)
walk("POST /api/v1/billing/connect", lambda w: "/api/v1/billing/connect")
walk("POST /api/v1/billing/customers/{user_id}/credits",
     lambda w: w.book() or f"/api/v1/billing/customers/{w.customer.user_id}/credits",
     {"amount": 500})
walk("PATCH /api/v1/billing/customers/{user_id}/spending",
     lambda w: w.book() or f"/api/v1/billing/customers/{w.customer.user_id}/spending",
     {"spending_limit": 10_000})
walk("POST /api/v1/billing/ledger/{entry_id}/reversal",
     lambda w: f"/api/v1/billing/ledger/{w.charge()}/reversal", {"reason": "goodwill refund"})
walk("POST /api/v1/billing/plans", lambda w: "/api/v1/billing/plans",
     lambda w: {"code": "pro", "name": "Pro", "amount_minor": 1900,
                "stripe_price_id": w.fake_stripe.add_price(unit_amount=1900)})
walk("PATCH /api/v1/billing/plans/{plan_id}", lambda w: f"/api/v1/billing/plans/{w.plan()}",
     {"name": "Pro Plus", "agents": 5})
walk("PUT /api/v1/billing/plans/{plan_id}/usage",
     lambda w: w.book() or f"/api/v1/billing/plans/{w.plan()}/usage",
     {"included_minor": 150, "overage_bp": 20_000})
walk("POST /api/v1/billing/prices", lambda w: w.book() or "/api/v1/billing/prices",
     {"kind": "execution", "model": "gpt-4o", "per_execution_minor": 5})
walk("PUT /api/v1/billing/prices/book", lambda w: "/api/v1/billing/prices/book",
     {"currency": "eur", "usd_rate_ppm": 920_000})
walk("DELETE /api/v1/billing/prices/{price_id}",
     lambda w: f"/api/v1/billing/prices/{w.price()}")
walk("DELETE /api/v1/conversations/{conversation_id}",
     lambda w: f"/api/v1/conversations/{w.conversation()}", actor="customer")
walk("POST /api/v1/hooks", lambda w: "/api/v1/hooks",
     lambda w: {"target_url": w.receiver.url("/zap"), "event": "license.created"})
walk("DELETE /api/v1/hooks/{hook_id}", lambda w: f"/api/v1/hooks/{w.hook()}")
walk("POST /api/v1/invitations", lambda w: "/api/v1/invitations",
     {"email": "new@example.com", "role": "USER"})
walk("DELETE /api/v1/invitations/{invitation_id}",
     lambda w: f"/api/v1/invitations/{w.invitation()}")
walk("POST /api/v1/invitations/{invitation_id}/resend",
     lambda w: f"/api/v1/invitations/{w.invitation()}/resend")
walk("POST /api/v1/licenses", lambda w: "/api/v1/licenses",
     lambda w: {"policy_id": str(w.license().policy_id), "name": "Shop"})
walk("POST /api/v1/licenses/bulk", lambda w: "/api/v1/licenses/bulk",
     lambda w: {"policy_id": str(w.license().policy_id), "count": 2})
walk("PUT /api/v1/licenses/{license_id}/customer",
     lambda w: f"/api/v1/licenses/{w.license().id}/customer",
     lambda w: {"customer_email": w.customer.email})
walk("POST /api/v1/licenses/{license_id}/extend",
     lambda w: f"/api/v1/licenses/{w.license().id}/extend",
     {"expires_at": "2040-01-01T00:00:00+00:00"})
walk("POST /api/v1/licenses/{license_id}/suspend", _license_action("suspend"))
walk("POST /api/v1/licenses/{license_id}/reinstate", _license_action("reinstate", "suspend"))
walk("POST /api/v1/licenses/{license_id}/renew", _license_action("renew"))
walk("POST /api/v1/licenses/{license_id}/revoke", _license_action("revoke"))
walk("POST /api/v1/policies", lambda w: "/api/v1/policies",
     lambda w: {"product_id": str(w.license().product_id), "name": "Yearly",
                "duration_days": 365})
walk("PUT /api/v1/policies/{policy_id}", lambda w: f"/api/v1/policies/{w.license().policy_id}",
     {"name": "Standard Plus", "duration_days": 30})
walk("POST /api/v1/products", lambda w: "/api/v1/products",
     {"code": "agent-lite", "name": "Agent Lite"})
walk("PATCH /api/v1/tenant", lambda w: "/api/v1/tenant",
     {"display_name": "Acme Agents Ltd", "signup_enabled": False})
walk("PATCH /api/v1/users/{user_id}", lambda w: f"/api/v1/users/{w.customer.user_id}",
     {"is_active": False})
walk("POST /api/v1/webhooks/deliveries/{delivery_id}/replay",
     lambda w: f"/api/v1/webhooks/deliveries/{w.failed_delivery()}/replay")
walk("POST /api/v1/webhooks/endpoints", lambda w: "/api/v1/webhooks/endpoints",
     lambda w: {"url": w.receiver.url("/acme")})
walk("PATCH /api/v1/webhooks/endpoints/{endpoint_id}",
     lambda w: f"/api/v1/webhooks/endpoints/{w.endpoint()}",
     {"description": "CRM", "enabled": False})
walk("DELETE /api/v1/webhooks/endpoints/{endpoint_id}",
     lambda w: f"/api/v1/webhooks/endpoints/{w.endpoint()}")
walk("POST /api/v1/webhooks/endpoints/{endpoint_id}/rotate-secret",
     lambda w: f"/api/v1/webhooks/endpoints/{w.endpoint()}/rotate-secret", {})
walk("POST /api/v1/widget/keys", lambda w: "/api/v1/widget/keys",
     lambda w: {"name": "Shop", "agent_id": str(w.agent()),
                "allowed_origins": ["https://shop.example"]})
walk("PATCH /api/v1/widget/keys/{key_id}", lambda w: f"/api/v1/widget/keys/{w.widget_key()}",
     {"name": "Shop front", "monthly_cap": 500})
walk("POST /api/v1/widget/keys/{key_id}/revoke",
     lambda w: f"/api/v1/widget/keys/{w.widget_key()}/revoke")
# The platform operator's.
_RESELLERS = "/api/v1/platform/resellers"
walk(f"POST {_RESELLERS}", lambda w: _RESELLERS, {"name": "Initech", "slug": "initech"},
     actor="admin", site="platform")
walk(f"POST {_RESELLERS}/{{tenant_id}}/domains",
     lambda w: f"{_RESELLERS}/{w.acme.info.id}/domains", {"hostname": "agents.acme.example"},
     actor="admin", site="platform")
walk(f"DELETE {_RESELLERS}/{{tenant_id}}/domains/{{domain_id}}",
     lambda w: f"{_RESELLERS}/{w.acme.info.id}/domains/{w.domain()}",
     actor="admin", site="platform")
walk(f"POST {_RESELLERS}/{{tenant_id}}/domains/{{domain_id}}/verify",
     lambda w: f"{_RESELLERS}/{w.acme.info.id}/domains/{w.domain_in_dns()}/verify",
     actor="admin", site="platform")
walk("POST /api/v1/tenant/domains/{domain_id}/verify",
     lambda w: f"/api/v1/tenant/domains/{w.domain_in_dns()}/verify")
walk(f"POST {_RESELLERS}/{{tenant_id}}/invitations/{{invitation_id}}/{{action}}",
     lambda w: f"{_RESELLERS}/{w.owner_invitation()}/revoke", actor="admin", site="platform")
walk(f"POST {_RESELLERS}/{{tenant_id}}/{{action}}",
     lambda w: f"{_RESELLERS}/{w.acme.info.id}/suspend", actor="admin", site="platform")
walk("POST /api/v1/platform/system/failed/{kind}/{unit_id}/{action}",
     lambda w: f"/api/v1/platform/system/failed/email/{w.failed_email()}/discard",
     actor="admin", site="platform")


# Steps whose caller signs in (API keys are made with a user's token, not another key).
@step("POST /api/v1/auth/token")
def _(w):
    return Call(w.acme, "POST", "/api/v1/auth/token", w.owner,
                {"email": w.owner.email, "password": "correct horse battery"}, headers={})


@step("POST /api/v1/api-keys")
def _(w):
    return Call(w.acme, "POST", "/api/v1/api-keys", w.owner,
                {"name": "CI", "scopes": ["agents:read"]}, headers=w.signed_in(w.owner))


@step("DELETE /api/v1/api-keys/{key_id}")
def _(w):
    headers = w.signed_in(w.owner)
    made = w.acme.client.post("/api/v1/api-keys", headers=headers,
                              json={"name": "CI", "scopes": ["agents:read"]}).get_json()
    w.secrets.extend(secrets_in(made))
    return Call(w.acme, "DELETE", f"/api/v1/api-keys/{made['id']}", w.owner, headers=headers)


# -- the tests ----------------------------------------------------------------------------

def _document(app) -> dict:
    from app.extensions import api

    with app.app_context():
        return api.spec.to_dict()


def test_every_mutating_operation_is_walked_or_excused_with_a_reason(app):
    document = _document(app)
    assert len(mutating_operations(document)) > 50  # the walk reads the real document
    missing, gone = uncovered(document, STEPS, NOT_AUDITED)
    assert not missing, f"operations with no audit walk step and no excuse: {sorted(missing)}"
    assert not gone, f"steps or excuses for operations no longer in the document: {sorted(gone)}"
    assert not set(STEPS) & set(NOT_AUDITED)
    assert all(len(reason) > 30 for reason in NOT_AUDITED.values())


def test_a_new_operation_without_a_step_fails_the_walk(app):
    document = _document(app)
    document["paths"]["/api/v1/licenses/{license_id}/transfer"] = {"post": {}, "get": {}}
    missing, gone = uncovered(document, STEPS, NOT_AUDITED)
    assert missing == {"POST /api/v1/licenses/{license_id}/transfer"} and not gone
    del document["paths"]["/api/v1/billing/portal"]
    missing, gone = uncovered(document, STEPS, NOT_AUDITED)
    assert gone == {"POST /api/v1/billing/portal"}


@pytest.mark.parametrize("operation", sorted(STEPS))
def test_the_operation_writes_an_audit_entry(world, operation):
    call = STEPS[operation](world)
    assert operation.split()[0] == call.method
    before = audit_ids(world.app)
    headers = call.actor.headers if call.headers is None else call.headers
    answer = call.site.client.open(call.path, method=call.method, headers=headers,
                                   json=call.json)
    assert answer.status_code < 300, (operation, answer.status_code, answer.get_json())
    secrets = world.secrets + secrets_in(answer.get_json(silent=True))
    assert_audited(world, operation, call.actor, new_entries(world.app, before), secrets)


def test_unknown_actions_are_refused_and_every_action_reads_as_a_sentence():
    from app.auth import audit
    from app.auth.audit_text import VERBS

    assert set(audit.ACTIONS) <= set(VERBS), set(audit.ACTIONS) - set(VERBS)
    with pytest.raises(ValueError):
        audit.record("did_something_" + uuid.uuid4().hex[:6])


def test_a_plan_change_is_recorded_once_with_before_and_after(world):
    """The licensing PATCH and the audit watcher both saw plan changes; one entry remains."""
    plan_id = world.plan()
    before = audit_ids(world.app)
    answer = world.acme.client.patch(f"/api/v1/billing/plans/{plan_id}",
                                     headers=world.owner.headers, json={"licenses": 40})
    assert answer.status_code == 200, answer.get_json()
    entries = new_entries(world.app, before)
    assert [(e["action"], e["target_id"]) for e in entries] == [("plan_updated", str(plan_id))]
    assert entries[0]["details"]["licenses"] == 40
    assert entries[0]["details"]["before"] == {"licenses": None}
    assert entries[0]["sentence"] == (
        "owner@acme.example (with an API key) changed plan Pro (licenses)")
