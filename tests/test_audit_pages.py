"""Audit completeness for page actions (issue 16, item 6): every form POST of the dashboards
that staff (a reseller's team, the platform operator) use writes an audit entry naming its
actor, tenant and target, with a readable summary and no secret, unless it is excused below.

The walk is driven by the app's URL map: a POST page route with neither a step nor an excuse
fails, and so does a step or excuse for a route that is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests import audit_walk_support, billing_support
from tests.accounts_support import csrf
from tests.audit_walk_support import World, assert_audited, audit_ids, new_entries
from tests.conftest import login
from tests.fakes import receiver as receivers

# Every route is exercised with a fresh app: minutes of work, so CI runs it once (on
# PostgreSQL); `make test` runs it too.
pytestmark = pytest.mark.walk

fake_stripe = billing_support.fake_stripe
receiver = receivers.receiver
app, world = audit_walk_support.app, audit_walk_support.world

NOT_AUDITED: dict[str, str] = {
    "/login": "anyone signing in, not a staff change (recorded as sign_in or sign_in_failed)",
    "/logout": "ends the person's own session; nothing of the tenant changes",
    "/signup": "a visitor signing up, not a staff action (recorded as sign_up)",
    "/forgot-password": "an anonymous password reset request: it queues an email (kept in "
                        "the outbox); nothing changes until the link is used",
    "/reset-password/<token>": "the person themself with an emailed link (recorded as "
                               "password_changed)",
    "/invitation/<token>": "the invited person accepting (recorded as invitation_accepted)",
    "/account/password": "a person's own password (recorded as password_changed)",
    "/account/verify-email": "queues the verification email again (kept in the outbox); "
                             "the account does not change",
    "/account/oauth/<provider>/link": "a person's own sign-in methods: it only sends them to "
                                      "the provider",
    "/account/oauth/<uuid:identity_id>/unlink": "a person's own sign-in methods, not a "
                                                "staff action on the tenant",
    "/agents/<uuid:agent_id>/sandbox": "a sandbox run is an execution, recorded as such and "
                                       "in the usage ledger",
    "/billing/checkout": "stores nothing: it sends the buyer to Stripe Checkout",
    "/billing/portal": "stores nothing: it sends the subscriber to Stripe's billing portal",
}


@dataclass
class Form:
    site: object
    path: str
    actor: object
    data: dict


STEPS: dict[str, Callable[[World], Form]] = {}
PROVIDER_KEY = "sk-provider-secret-1234567890WXYZ"


def page(rule: str, path: Callable[[World], str], data: Callable[[World], dict] | dict | None
         = None, operator: bool = False) -> None:
    def build(w: World) -> Form:
        at = path(w)
        sent = data(w) if callable(data) else dict(data or {})
        return Form(w.platform if operator else w.acme, at, w.admin if operator else w.owner,
                    sent)
    STEPS[rule] = build


def _api(w: World, method: str, path: str, body: dict | None = None) -> dict:
    return w.post(w.acme, path, w.owner, body, method=method)


def _machine(w: World) -> str:
    made = w.license()
    answer = w.acme.client.post("/api/v1/machines", json={"fingerprint": "fp-1"},
                                headers={"Authorization": f"License {made.key}"})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def _api_key(w: World) -> str:
    from app.auth.api_keys import create_key
    from app.auth.models import User
    from app.extensions import db

    with w.ctx():
        key, raw = create_key(db.session.get(User, w.owner.user_id), "CI", ["agents:read"])
        db.session.commit()
        w.secrets.append(raw)
        return str(key.id)


def _second_version(w: World) -> str:
    agent_id = w.agent()
    _api(w, "POST", f"/api/v1/agents/{agent_id}/versions",
         {"model": "gpt-4o-mini", "system_prompt": "You help."})
    return f"/agents/{agent_id}/publish"


def _provider_key(w: World) -> dict:
    w.secrets.append(PROVIDER_KEY)
    return {"api_key": PROVIDER_KEY}


def _provider_set(w: World) -> str:
    _api(w, "PUT", "/api/v1/agents/provider", _provider_key(w))
    return "/agents/provider/clear"


def _signed_in_as(w: World) -> str:
    answer = w.acme.client.post(f"/people/customers/{w.customer.user_id}/sign-in-as",
                                data={"csrf_token": csrf(w.acme, "/")})
    assert answer.status_code == 302
    return "/sign-in-as/end"


def _oauth_app(w: World) -> dict:
    w.secrets.append("google-client-secret-42")
    return {"google-client_id": "client-id.apps.example", "google-enabled": "y",
            "google-client_secret": "google-client-secret-42"}


def _plan_form(w: World) -> dict:
    return {"name": "Pro", "code": "pro", "interval": "month", "price": "19.00",
            "currency": "usd", "stripe_price_id": w.fake_stripe.add_price(unit_amount=1900)}


page("/agents", lambda w: "/agents",
     {"name": "Helper", "model": "gpt-4o-mini", "system_prompt": "Hi", "variables": "[]"})
page("/agents/<uuid:agent_id>/versions", lambda w: f"/agents/{w.agent()}/versions",
     {"model": "gpt-4o-mini", "system_prompt": "You help more.", "temperature": "0.5",
      "max_output_tokens": "512"})
page("/agents/<uuid:agent_id>/publish", _second_version, {"version": "2"})
page("/agents/provider", lambda w: "/agents/provider", _provider_key)
page("/agents/provider/clear", _provider_set)
page("/billing/connect", lambda w: "/billing/connect")
page("/billing/plans", lambda w: "/billing/plans", _plan_form)
page("/billing/usage/prices", lambda w: w.book() or "/billing/usage/prices",
     {"kind": "execution", "model": "gpt-4o", "per_execution_minor": "5"})
page("/embed", lambda w: "/embed",
     lambda w: {"name": "Shop", "agent_id": str(w.agent()),
                "allowed_origins": "https://shop.example"})
page("/embed/<uuid:key_id>", lambda w: f"/embed/{w.widget_key()}",
     {"name": "Shop front", "allowed_origins": "https://shop.example", "monthly_cap": "500"})
page("/embed/<uuid:key_id>/revoke", lambda w: f"/embed/{w.widget_key()}/revoke")
page("/integrations", lambda w: "/integrations",
     lambda w: {"url": w.receiver.url("/crm"), "description": "CRM"})
page("/integrations/deliveries/<delivery_id>/replay",
     lambda w: f"/integrations/deliveries/{w.failed_delivery()}/replay")
page("/integrations/endpoints/<endpoint_id>/<action>",
     lambda w: f"/integrations/endpoints/{w.endpoint()}/disable")
page("/licensing/licenses/<uuid:license_id>/<action>",
     lambda w: f"/licensing/licenses/{w.license().id}/suspend")
page("/licensing/licenses/bulk", lambda w: "/licensing/licenses/bulk",
     lambda w: {"policy_id": str(w.license().policy_id), "count": "2", "name_prefix": "Lot"})
page("/licensing/licenses/issue", lambda w: "/licensing/licenses/issue",
     lambda w: {"policy_id": str(w.license().policy_id), "name": "Desk 1"})
page("/licensing/machines/<uuid:machine_id>/deactivate",
     lambda w: f"/licensing/machines/{_machine(w)}/deactivate")
page("/licensing/policies", lambda w: "/licensing/policies",
     lambda w: {"product_id": str(w.license().product_id), "name": "Team",
                "duration_days": "30"})
page("/licensing/products", lambda w: "/licensing/products",
     {"name": "Pro Agent", "code": "pro", "entitlements": "chat"})
page("/people/invite", lambda w: "/people/invite", {"email": "dana@example.com", "role": "USER"})
page("/people/invitations/<uuid:invitation_id>/<any(resend, revoke):action>",
     lambda w: f"/people/invitations/{w.invitation()}/revoke")
page("/people/users/<uuid:user_id>/<any(deactivate, reactivate):action>",
     lambda w: f"/people/users/{w.customer.user_id}/deactivate")
page("/people/customers/<uuid:customer_id>/<any(ban, unban):action>",
     lambda w: f"/people/customers/{w.customer.user_id}/ban")
page("/people/customers/<uuid:customer_id>/sign-in-as",
     lambda w: f"/people/customers/{w.customer.user_id}/sign-in-as")
page("/sign-in-as/end", _signed_in_as)
page("/settings/api-keys", lambda w: "/settings/api-keys",
     {"name": "CI", "scopes": ["agents:read"]})
page("/settings/api-keys/<uuid:key_id>/revoke",
     lambda w: f"/settings/api-keys/{_api_key(w)}/revoke")
page("/settings/branding", lambda w: "/settings/branding",
     {"display_name": "Acme AI", "primary_color": "#e11d48", "accent_color": "#f59e0b",
      "support_email": "", "logo_url": "", "license_key_prefix": "ACME"})
page("/settings/domains/<uuid:domain_id>/verify",
     lambda w: f"/settings/domains/{w.domain_in_dns()}/verify")
page("/settings/sign-in/<provider>", lambda w: "/settings/sign-in/google", _oauth_app)
page("/settings/sign-in/signup", lambda w: "/settings/sign-in/signup")
# The platform operator's.
page("/admin/resellers", lambda w: "/admin/resellers",
     {"slug": "initech", "name": "Initech", "owner_email": "boss@initech.example"},
     operator=True)
page("/admin/resellers/<uuid:tenant_id>", lambda w: f"/admin/resellers/{w.acme.info.id}",
     {"hostname": "agents.acme.example"}, operator=True)
page("/admin/resellers/<uuid:tenant_id>/domains/<uuid:domain_id>/verify",
     lambda w: f"/admin/resellers/{w.acme.info.id}/domains/{w.domain_in_dns()}/verify",
     operator=True)
page("/admin/resellers/<uuid:tenant_id>/<any(suspend, reinstate):action>",
     lambda w: f"/admin/resellers/{w.acme.info.id}/suspend", operator=True)
page("/admin/resellers/<uuid:tenant_id>/invitations/<uuid:invitation_id>/"
     "<any(resend, revoke):action>",
     lambda w: f"/admin/resellers/{w.owner_invitation()}/revoke", operator=True)
page("/admin/resellers/<uuid:tenant_id>/users/<uuid:user_id>/sign-in-as",
     lambda w: f"/admin/resellers/{w.acme.info.id}/users/{w.owner.user_id}/sign-in-as",
     operator=True)
page("/admin/system/failed/<any(job, email, delivery, execution):kind>/<unit_id>/"
     "<any(retry, discard):action>",
     lambda w: f"/admin/system/failed/email/{w.failed_email()}/discard", operator=True)


def page_actions(app) -> set[str]:
    """Every POST route of the pages (the API is walked by test_audit_completeness)."""
    return {rule.rule for rule in app.url_map.iter_rules()
            if "POST" in (rule.methods or ()) and not rule.rule.startswith("/api/")}


def test_every_page_action_is_walked_or_excused_with_a_reason(app):
    actions = page_actions(app)
    assert len(actions) > 30
    assert not actions - set(STEPS) - set(NOT_AUDITED), sorted(
        actions - set(STEPS) - set(NOT_AUDITED))
    assert not (set(STEPS) | set(NOT_AUDITED)) - actions, sorted(
        (set(STEPS) | set(NOT_AUDITED)) - actions)
    assert not set(STEPS) & set(NOT_AUDITED)


@pytest.mark.parametrize("rule", sorted(STEPS))
def test_the_page_action_writes_an_audit_entry(world, rule):
    assert login(world.acme, world.owner.email).status_code == 302
    assert login(world.platform, world.admin.email).status_code == 302
    form = STEPS[rule](world)
    before = audit_ids(world.app)
    answer = form.site.client.post(form.path, data={**form.data,
                                                    "csrf_token": csrf(form.site, "/")})
    assert answer.status_code in (200, 201, 302, 303), (rule, answer.status_code)
    assert_audited(world, rule, form.actor, new_entries(world.app, before), world.secrets)
