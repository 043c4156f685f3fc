"""The audit log: readable sentences with named, linked targets; filters by actor, action
and date; agents, versions, publish and rollback, branding, plans, webhook endpoints and
domains recorded, with no secrets; each reseller sees only its own."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from sqlalchemy import select

from tests.conftest import login
from tests.licensing_support import make_license

VERSION = {"model": "gpt-4o-mini", "system_prompt": "You help."}


def _events(app, site, action=None):
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(site.info):
        stmt = select(AuditEvent).order_by(AuditEvent.created_at)
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        rows = list(db.session.scalars(stmt))
        for row in rows:
            db.session.expunge(row)
        return rows


def _sentences(html: str) -> list[str]:
    cells = re.findall(r'<td data-action="[^"]+">(.*?)</td>', html, re.S)
    return [re.sub(r"\s+", " ", c).strip() for c in cells]


def test_agent_lifecycle_is_recorded_and_read_as_sentences(app, acme, globex, api_caller,
                                                           make_user):
    owner = api_caller(acme, role="RESELLER", email="owner@acme.example")
    made = acme.client.post("/api/v1/agents", headers=owner.headers, json={
        "name": "Helper", "slug": "helper", "description": "", "version": VERSION})
    assert made.status_code == 201, made.get_json()
    agent_id = made.get_json()["id"]
    v2 = acme.client.post(f"/api/v1/agents/{agent_id}/versions", headers=owner.headers,
                          json={**VERSION, "system_prompt": "You help more."})
    assert v2.status_code == 201, v2.get_json()
    acme.client.post(f"/api/v1/agents/{agent_id}/publish", headers=owner.headers,
                     json={"version": 2})
    acme.client.post(f"/api/v1/agents/{agent_id}/publish", headers=owner.headers,
                     json={"version": 1})
    acme.client.patch(f"/api/v1/agents/{agent_id}", headers=owner.headers,
                      json={"name": "Helper Pro"})
    actions = [e.action for e in _events(app, acme) if e.action.startswith("agent_")]
    assert actions[:2] == ["agent_created", "agent_version_created"]
    assert {"agent_published", "agent_rolled_back", "agent_updated"} <= set(actions)
    assert actions.count("agent_version_created") == 2
    rollback = _events(app, acme, "agent_rolled_back")[0]
    assert rollback.details["number"] == 1 and rollback.details["previous"] == 2
    assert rollback.actor_user_id == owner.user_id
    assert _events(app, globex) == []

    login(acme, "owner@acme.example")
    html = acme.client.get("/audit").get_data(as_text=True)
    sentences = _sentences(html)
    by_key = "owner@acme.example (with an API key)"
    assert f"{by_key} rolled agent Helper Pro back to version 1" in sentences
    assert f"{by_key} saved version 2 of agent Helper Pro" in sentences
    assert f'href="/agents/{agent_id}"' in html  # the target is a link
    assert "agent_rolled_back" not in re.sub(r'data-action="[^"]+"|value="[^"]+"', "", html)

    acme.client.delete(f"/api/v1/agents/{agent_id}", headers=owner.headers)
    deleted = _sentences(acme.client.get("/audit?action=agent_deleted").get_data(as_text=True))
    assert deleted == [f"{by_key} deleted agent Helper Pro"]


def test_license_sentence_names_the_key_and_links_it(app, acme, api_caller):
    owner = api_caller(acme, role="RESELLER", email="owner@acme.example")
    lic = make_license(app, acme)
    assert acme.client.post(f"/api/v1/licenses/{lic.id}/revoke",
                            headers=owner.headers).status_code == 200
    login(acme, "owner@acme.example")
    html = acme.client.get("/audit?action=license_revoked").get_data(as_text=True)
    [sentence] = _sentences(html)
    assert sentence == f"owner@acme.example (with an API key) revoked license {lic.key[:9]}…"
    assert f'href="/licensing/licenses/{lic.id}"' in html
    assert lic.key not in html  # the full key is a credential


def test_branding_plans_and_domains_are_recorded(app, acme, api_caller):
    owner = api_caller(acme, role="RESELLER", email="owner@acme.example")
    assert acme.client.patch("/api/v1/tenant", headers=owner.headers, json={
        "display_name": "Acme AI", "primary_color": "#112233"}).status_code == 200
    [branding] = _events(app, acme, "branding_changed")
    assert branding.details["fields"] == ["display_name", "primary_color"]
    assert branding.details["primary_color"] == "#112233"
    plan = acme.client.post("/api/v1/billing/plans", headers=owner.headers, json={
        "code": "pro", "name": "Pro", "amount_minor": 1900, "stripe_price_id": "price_pro"})
    assert plan.status_code == 201, plan.get_json()
    [created] = _events(app, acme, "plan_created")
    assert created.details["name"] == "Pro" and created.target_id == plan.get_json()["id"]

    from app.extensions import db
    from tenants.context import activate
    from tenants.service import add_domain, get_by_slug, mark_domain_verified

    with app.app_context(), activate(acme.info):
        domain = add_domain(get_by_slug("acme"), "agents.acme.example")
        db.session.commit()
        mark_domain_verified(domain)
        db.session.commit()
    [verified] = _events(app, acme, "domain_changed")
    assert verified.details == {"hostname": "agents.acme.example", "change": "verified"}


def test_webhook_endpoint_changes_never_record_the_secret(app, acme, make_user):
    owner = make_user(acme, "owner@acme.example", role="RESELLER")
    from app.extensions import db
    from app.integrations.models import WebhookEndpoint
    from tenants.context import activate

    with app.app_context(), activate(acme.info):
        endpoint = WebhookEndpoint(url="https://hooks.acme.example/in", event_types=[],
                                   created_by_user_id=owner,
                                   secret_encrypted="gAAAA-very-secret-ciphertext")
        db.session.add(endpoint)
        db.session.commit()
        endpoint.secret_encrypted = "gAAAA-another-secret-ciphertext"
        endpoint.url = "https://hooks.acme.example/v2"
        db.session.commit()
        db.session.delete(endpoint)
        db.session.commit()
    events = [e for e in _events(app, acme) if e.action.startswith("webhook_endpoint_")]
    assert [e.action for e in events] == ["webhook_endpoint_created",
                                          "webhook_endpoint_updated",
                                          "webhook_endpoint_deleted"]
    assert events[1].details["signing_secret_rotated"] is True
    assert events[1].details["url"] == "https://hooks.acme.example/v2"
    assert "secret-ciphertext" not in json.dumps([e.details for e in events])


def test_filters_by_actor_action_and_date_stay_in_the_tenant(app, acme, globex, make_user,
                                                            api_caller, at):
    from tests.accounts_support import post_form

    at(datetime(2026, 11, 10, 9, 0, tzinfo=UTC))
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(acme, "second@acme.example", role="RESELLER")
    make_user(globex, "owner@acme.example", role="RESELLER")  # a look-alike at globex
    login(acme, "owner@acme.example")
    at(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))
    login(acme, "second@acme.example")
    post_form(acme, "/people/invite", {"email": "dana@example.com", "role": "USER"},
              token_from="/people/customers")
    login(globex, "owner@acme.example")

    only_second = acme.client.get("/audit?actor=second@").get_data(as_text=True)
    assert all(s.startswith("second@acme.example") for s in _sentences(only_second))
    assert "second@acme.example invited dana@example.com" in _sentences(only_second)
    recent = _sentences(acme.client.get("/audit?since=2026-11-15&action=sign_in")
                        .get_data(as_text=True))
    assert recent == ["second@acme.example signed in"]
    early = _sentences(acme.client.get("/audit?until=2026-11-10").get_data(as_text=True))
    assert early == ["owner@acme.example signed in"]
    assert acme.client.get("/audit?since=yesterday").status_code == 400

    api = api_caller(acme, role="RESELLER", email="owner@acme.example")
    body = acme.client.get("/api/v1/audit-events?actor=second&since=2026-11-20",
                           headers=api.headers).get_json()
    assert {e["action"] for e in body["items"]} == {"sign_in", "invitation_sent"}
    # globex's look-alike owner's sign-in is not in acme's log, and vice versa
    globex_log = _sentences(globex.client.get("/audit").get_data(as_text=True))
    assert globex_log == ["owner@acme.example signed in"]
    assert "invited" not in " ".join(globex_log)


def test_platform_admin_reads_every_log_with_names(app, platform, acme, make_user):
    make_user(platform, "admin@example.com", role="ADMIN")
    owner = make_user(acme, "owner@acme.example", role="RESELLER")
    from app.agents.service import Caller, create_agent
    from app.extensions import db
    from tenants.context import activate

    with app.app_context(), activate(acme.info):
        create_agent(Caller(owner, "RESELLER"), name="Helper", slug="helper", version=VERSION)
        db.session.commit()
    login(platform, "admin@example.com")
    html = platform.client.get("/audit?action=agent_created").get_data(as_text=True)
    # created outside any request (a script): the actor is "system", the name still resolves
    assert _sentences(html) == ["system created agent Helper"]


def test_a_customers_spending_settings_read_in_words_in_its_own_tenant_only(
        app, acme, globex, api_caller, make_user):
    from tests.rebilling_support import set_book

    for site in (acme, globex):
        set_book(app, site, kind="execution", per_execution_minor=30)
    owner = api_caller(acme, role="RESELLER", email="owner@acme.example")
    api_caller(globex, role="RESELLER", email="owner@acme.example")  # a look-alike owner
    ann = make_user(acme, "ann@example.com")
    make_user(globex, "ann@example.com")
    answer = acme.client.patch(f"/api/v1/billing/customers/{ann}/spending",
                               headers=owner.headers, json={
                                   "spending_limit": 5000, "limit_mode": "hard",
                                   "credits_enabled": True, "auto_topup_below": 250,
                                   "auto_topup_amount": 1000})
    assert answer.status_code == 200, answer.get_json()
    [entry] = _events(app, acme, "spending_settings_changed")
    assert entry.details["spending_limit_minor"] == 5000  # the record keeps the columns
    login(acme, "owner@acme.example")
    html = acme.client.get("/audit?action=spending_settings_changed").get_data(as_text=True)
    assert _sentences(html) == [
        "owner@acme.example (with an API key) changed the spending settings of "
        "ann@example.com (automatic top-up amount, automatic top-up threshold, prepaid "
        "credits, what happens at the limit, spending limit)"]
    login(globex, "owner@acme.example")
    theirs = globex.client.get("/audit?action=spending_settings_changed")
    assert _sentences(theirs.get_data(as_text=True)) == []


def test_every_watched_field_reads_in_words_in_every_change_sentence(app, acme):
    """Whatever a watcher records as changed (app.auth.audit_watch), no sentence shows the
    column's name: each has its words, and a new watched column without words fails here."""
    from app.auth import audit_text
    from app.auth.audit_watch import watched_columns
    from app.auth.models import AuditEvent
    from tenants.context import activate

    columns = sorted(watched_columns())
    assert {"spending_limit_minor", "limit_mode", "auto_topup_amount_minor"} <= set(columns)
    assert set(columns) <= set(audit_text.FIELD_WORDS), \
        set(columns) - set(audit_text.FIELD_WORDS)
    listing = [a for a, verb in audit_text.VERBS.items() if "{fields}" in verb]
    assert {"spending_settings_changed", "plan_updated", "policy_updated",
            "price_book_changed", "widget_key_updated", "branding_changed"} <= set(listing)
    raw = [c for c in columns if "_" in c or audit_text.FIELD_WORDS[c] != c]
    with app.app_context(), activate(acme.info), app.test_request_context():
        events = [AuditEvent(action=action, target_type="user", target_id=None,
                             actor_label="owner@acme.example",
                             details={"name": "Pro", "fields": columns})
                  for action in listing]
        for line in audit_text.describe(events):
            words = re.findall(r"\(([^()]*)\)$", line.sentence)[0].split(", ")
            assert len(words) == len(columns), line.sentence
            assert not set(words) & set(raw), (line.event.action, set(words) & set(raw))
            assert "_" not in line.sentence, line.sentence
