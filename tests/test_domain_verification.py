"""Custom domains proved by a real DNS lookup: the app's resolver code (dnspython) asks a
local UDP DNS server (tests/fakes/dns_server.py) through ALBEDO_DNS_RESOLVER. Two resellers
with look-alike domains throughout: one's token in DNS never verifies the other's domain, and
neither sees, checks nor detects the other's domains."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.accounts_support import post_form
from tests.conftest import Site, host_client, login
from tests.fakes.dns_server import FakeDNSServer

ACME_HOST, GLOBEX_HOST = "agents.acme.test", "agents.globex.test"


@pytest.fixture
def dns():
    server = FakeDNSServer().start()
    yield server
    server.stop()


@pytest.fixture
def dns_app(app, migrated, dns):
    """The app, its resolver pointed at the stand-in DNS server (same database as ``app``)."""
    from app import create_app

    application = create_app(migrated.with_overrides(
        extra={**migrated.extra, "ALBEDO_DNS_RESOLVER": dns.address}))
    yield application
    with application.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


def _on(application, site) -> Site:
    return Site(info=site.info, host=site.host, client=host_client(application, site.host))


def _attach(app, site, hostname) -> tuple[str, str]:
    """A pending custom domain of ``site``: (its id, its token)."""
    from app.extensions import db
    from tenants.context import activate
    from tenants.models import Tenant
    from tenants.platform import attach_domain

    with app.app_context(), activate(site.info):
        domain = attach_domain(db.session.get(Tenant, site.info.id), hostname, False, False,
                               actor=None)
        db.session.commit()
        return str(domain.id), domain.verification_token


def _verified(app, site, hostname) -> bool:
    from app.extensions import db
    from tenants.context import activate
    from tenants.models import Domain

    with app.app_context(), activate(site.info):
        return db.session.scalars(select(Domain).where(
            Domain.hostname == hostname)).one().verified


def _domain_changes(app, site) -> list[tuple[str, str]]:
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(site.info):
        return [(e.details["change"], e.details["hostname"]) for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "domain_changed")
            .order_by(AuditEvent.created_at))]


def _flash(html: str) -> str:
    found = re.search(r'<div class="(?:error|notice)" role="(?:alert|status)">([^<]*)</div>', html)
    return found.group(1) if found else ""


def test_verify_now_looks_the_record_up_and_one_resellers_token_never_proves_another(
        app, dns_app, dns, acme, globex, make_user):
    acme_id, acme_token = _attach(app, acme, ACME_HOST)
    globex_id, globex_token = _attach(app, globex, GLOBEX_HOST)
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(globex, "owner@globex.example", role="RESELLER")
    acme_site, globex_site = _on(dns_app, acme), _on(dns_app, globex)
    login(acme_site, "owner@acme.example")
    login(globex_site, "owner@globex.example")
    record = f"_domain-verification.{ACME_HOST}"

    page = acme_site.client.get("/settings/domains").get_data(as_text=True)
    assert record in page and acme_token in page and "waiting for DNS" in page
    assert "albedo" not in page.lower()  # neither the record name nor anything else
    assert GLOBEX_HOST not in page and globex_token not in page

    def verify_acme():
        answer = post_form(acme_site, f"/settings/domains/{acme_id}/verify", {},
                           token_from="/settings/domains")
        assert answer.status_code == 302
        return _flash(acme_site.client.get("/settings/domains").get_data(as_text=True))

    # Nothing published yet: NXDOMAIN, said in the reseller's words.
    said = verify_acme()
    assert f"There is no TXT record named {record} yet" in said
    assert record in dns.queries  # a real query reached the DNS server
    # The other reseller's token, at this name and at the legacy one: not proof.
    dns.set_txt(record, globex_token)
    dns.set_txt(f"_albedo.{ACME_HOST}", globex_token)
    said = verify_acme()
    assert f"The TXT record {record} holds a different value" in said
    assert acme_token in said and globex_token not in said and "albedo" not in said.lower()
    assert not _verified(app, acme, ACME_HOST)
    # The other reseller can neither check nor detect this domain.
    assert post_form(globex_site, f"/settings/domains/{acme_id}/verify", {},
                     token_from="/settings/domains").status_code == 404
    # Its own record: verified, audited in its own log only.
    dns.set_txt(record, acme_token)
    said = verify_acme()
    assert said.startswith(f"{ACME_HOST} is verified")
    assert _verified(app, acme, ACME_HOST) and not _verified(app, globex, GLOBEX_HOST)
    assert _domain_changes(app, acme) == [("added", ACME_HOST), ("verified", ACME_HOST)]
    assert _domain_changes(app, globex) == [("added", GLOBEX_HOST)]
    page = acme_site.client.get("/settings/domains").get_data(as_text=True)
    assert "verified" in page and 'data-testid="verify-domain"' not in page
    # The domain now serves the reseller's dashboard (host resolution reads verified rows).
    assert host_client(dns_app, ACME_HOST).get("/login").status_code == 200
    assert host_client(dns_app, GLOBEX_HOST).get("/login").status_code == 404
    # Globex's own domain: the same steps, its own token.
    dns.set_txt(f"_domain-verification.{GLOBEX_HOST}", globex_token)
    post_form(globex_site, f"/settings/domains/{globex_id}/verify", {},
              token_from="/settings/domains")
    assert _verified(app, globex, GLOBEX_HOST)


def test_the_legacy_record_still_counts_and_split_strings_are_one_value(app, dns_app, dns,
                                                                        acme):
    from app.extensions import db
    from tenants import verification
    from tenants.context import activate
    from tenants.models import Domain

    _id, token = _attach(app, acme, ACME_HOST)
    dns.set_txt(f"_albedo.{ACME_HOST}", token)
    with dns_app.app_context(), activate(acme.info):
        domain = db.session.scalars(select(Domain)).one()
        assert verification.check(domain).verified
        dns.txt.clear()
        dns.set_txt(f"_domain-verification.{ACME_HOST}", (token[:12], token[12:]))
        assert verification.check(domain).verified


def test_problems_are_told_in_product_words(app, dns_app, dns, acme):
    from app.extensions import db
    from tenants import verification
    from tenants.context import activate
    from tenants.models import Domain

    _attach(app, acme, ACME_HOST)
    record = f"_domain-verification.{ACME_HOST}"
    with dns_app.app_context(), activate(acme.info):
        domain = db.session.scalars(select(Domain)).one()
        outcomes = {}
        outcomes["nxdomain"] = verification.check(domain)
        dns.names.add(record)  # the name exists, without a TXT record
        outcomes["no_txt"] = verification.check(domain)
        dns.set_txt(record, "something-else")
        outcomes["wrong"] = verification.check(domain)
        dns.servfail.update({record, f"_albedo.{ACME_HOST}"})
        outcomes["servfail"] = verification.check(domain)
        dns.servfail.clear()
        dns.silent.add(record)
        outcomes["timeout"] = verification.check(domain, lifetime=0.3)
    codes = {k: o.code for k, o in outcomes.items()}
    assert codes == {"nxdomain": "no_record", "no_txt": "no_record", "wrong": "wrong_value",
                     "servfail": "lookup_failed", "timeout": "timeout"}
    assert not any(o.verified for o in outcomes.values())
    assert "did not answer in time" in outcomes["timeout"].problem
    assert "answered with an error" in outcomes["servfail"].problem
    assert f"holds a different value. Change it to {domain.verification_token}" in (
        outcomes["wrong"].problem)
    for outcome in outcomes.values():
        assert "albedo" not in outcome.problem.lower()
        assert "NXDOMAIN" not in outcome.problem and "SERVFAIL" not in outcome.problem


def test_the_api_lists_and_verifies_only_the_resellers_own_domains(app, dns_app, dns, acme,
                                                                   globex, api_caller):
    acme_id, acme_token = _attach(app, acme, ACME_HOST)
    globex_id, globex_token = _attach(app, globex, GLOBEX_HOST)
    owner = api_caller(acme, role="RESELLER", email="owner@acme.example")
    rival = api_caller(globex, role="RESELLER", email="owner@acme.example")  # look-alike
    customer = api_caller(acme, email="casey@example.com")
    acme_api, globex_api = host_client(dns_app, acme.host), host_client(dns_app, globex.host)

    listed = acme_api.get("/api/v1/tenant/domains", headers=owner.headers).get_json()
    assert [d["hostname"] for d in listed["items"]] == [ACME_HOST]
    assert listed["items"][0]["record_name"] == f"_domain-verification.{ACME_HOST}"
    assert listed["items"][0]["record_value"] == acme_token
    assert listed["items"][0]["verified"] is False
    assert acme_api.get("/api/v1/tenant/domains", headers=customer.headers).status_code == 403
    assert [d["hostname"] for d in globex_api.get(
        "/api/v1/tenant/domains", headers=rival.headers).get_json()["items"]] == [GLOBEX_HOST]

    path = f"/api/v1/tenant/domains/{acme_id}/verify"
    dns.set_txt(f"_domain-verification.{ACME_HOST}", globex_token)
    refused = acme_api.post(path, headers=owner.headers)
    body = refused.get_json()
    assert refused.status_code == 200 and body["verified"] is False
    assert body["problem_code"] == "wrong_value" and acme_token in body["problem"]
    assert "albedo" not in json.dumps(body).lower()
    # Another reseller's domain: not found, on either reseller's host.
    assert globex_api.post(path, headers=rival.headers).status_code == 404
    assert acme_api.post(f"/api/v1/tenant/domains/{globex_id}/verify",
                         headers=owner.headers).status_code == 404
    assert acme_api.post(path, headers=customer.headers).status_code == 403

    dns.set_txt(f"_domain-verification.{ACME_HOST}", acme_token)
    done = acme_api.post(path, headers=owner.headers).get_json()
    assert done["verified"] is True and done["problem"] is None and done["problem_code"] is None
    assert not _verified(app, globex, GLOBEX_HOST)


def test_pending_domains_are_rechecked_in_the_background(app, dns_app, dns, acme, globex, at):
    from jobs.periodic import PERIODIC
    from jobs.registry import get_task

    start = at(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    _old_id, old_token = _attach(app, acme, "old.acme.test")
    at(start + timedelta(days=8))
    _id, acme_token = _attach(app, acme, ACME_HOST)
    _attach(app, globex, GLOBEX_HOST)
    dns.set_txt(f"_domain-verification.{ACME_HOST}", acme_token)
    dns.set_txt("_domain-verification.old.acme.test", old_token)
    dns.set_txt(f"_domain-verification.{GLOBEX_HOST}", acme_token)  # not globex's own
    # The periodic task the workers run (its slot claimed in the database like the others).
    assert "tenants.recheck_domains" in {p.task for p in PERIODIC}
    with dns_app.app_context():
        assert get_task("tenants.recheck_domains").func() == {"verified": 1}
    assert _verified(app, acme, ACME_HOST)
    assert not _verified(app, globex, GLOBEX_HOST)
    # A week-old pending domain waits for "Verify now": no lookup every few minutes forever.
    assert not _verified(app, acme, "old.acme.test")
    assert "_domain-verification.old.acme.test" not in dns.queries
    assert ("verified", ACME_HOST) in _domain_changes(app, acme)


@pytest.mark.parametrize("value", ["localhost:53", "127.0.0.1", "127.0.0.1:0",
                                   "127.0.0.1:70000", "dns.example:53"])
def test_the_resolver_setting_is_checked_at_start(migrated, value):
    from app import create_app
    from tenants.verification import DnsConfigError

    with pytest.raises(DnsConfigError, match="ALBEDO_DNS_RESOLVER"):
        create_app(migrated.with_overrides(extra={**migrated.extra,
                                                  "ALBEDO_DNS_RESOLVER": value}))


def test_the_operator_checks_a_resellers_domain_in_dns_too(app, dns_app, dns, platform, acme,
                                                          globex, api_caller):
    acme_id, acme_token = _attach(app, acme, ACME_HOST)
    _attach(app, globex, GLOBEX_HOST)
    admin = api_caller(platform, role="ADMIN", email="admin@example.com")
    api = host_client(dns_app, platform.host)
    path = f"/api/v1/platform/resellers/{acme.info.id}/domains/{acme_id}/verify"
    waiting = api.post(path, headers=admin.headers).get_json()
    assert waiting["verified"] is False and waiting["problem_code"] == "no_record"
    # The domain belongs to acme: asked under globex, it is not found.
    assert api.post(f"/api/v1/platform/resellers/{globex.info.id}/domains/{acme_id}/verify",
                    headers=admin.headers).status_code == 404
    dns.set_txt(f"_domain-verification.{ACME_HOST}", acme_token)
    assert api.post(path, headers=admin.headers).get_json()["verified"] is True
    assert _verified(app, acme, ACME_HOST) and not _verified(app, globex, GLOBEX_HOST)
    assert ("verified", ACME_HOST) in _domain_changes(app, platform)  # the operator's log


def test_the_operator_checks_dns_from_the_resellers_page(app, dns_app, dns, platform, acme,
                                                        globex, make_user):
    acme_id, acme_token = _attach(app, acme, ACME_HOST)
    globex_id, globex_token = _attach(app, globex, GLOBEX_HOST)
    make_user(platform, "admin@example.com", role="ADMIN")
    operator = _on(dns_app, platform)
    login(operator, "admin@example.com")
    acme_page, record = f"/admin/resellers/{acme.info.id}", f"_domain-verification.{ACME_HOST}"

    def check(tenant_id, domain_id):
        return post_form(operator, f"/admin/resellers/{tenant_id}/domains/{domain_id}/verify",
                         {}, token_from=acme_page)

    page = operator.client.get(acme_page).get_data(as_text=True)
    assert page.count('data-testid="check-domain"') == 1 and GLOBEX_HOST not in page
    # A wrong value (the other reseller's token): the problem, in product words.
    dns.set_txt(record, globex_token)
    answer = check(acme.info.id, acme_id)
    assert answer.status_code == 302 and answer.headers["Location"].endswith(acme_page)
    said = _flash(operator.client.get(acme_page).get_data(as_text=True))
    assert f"The TXT record {record} holds a different value" in said and acme_token in said
    assert not _verified(app, acme, ACME_HOST)
    # Another reseller's domain under this reseller (and the reverse): not found, unchanged.
    dns.set_txt(f"_domain-verification.{GLOBEX_HOST}", globex_token)
    assert check(acme.info.id, globex_id).status_code == 404
    assert check(globex.info.id, acme_id).status_code == 404
    assert not _verified(app, globex, GLOBEX_HOST)
    # Its record published: pending → verified, audited in the operator's log.
    dns.set_txt(record, acme_token)
    assert check(acme.info.id, acme_id).status_code == 302
    page = operator.client.get(acme_page).get_data(as_text=True)
    assert _flash(page).startswith(f"{ACME_HOST} is verified")
    assert 'data-testid="check-domain"' not in page
    assert _verified(app, acme, ACME_HOST) and not _verified(app, globex, GLOBEX_HOST)
    assert ("verified", ACME_HOST) in _domain_changes(app, platform)
    assert ("verified", ACME_HOST) not in _domain_changes(app, globex)
    # Only the operator: the reseller's own staff cannot use the operator's route.
    make_user(acme, "owner@acme.example", role="RESELLER")
    acme_site = _on(dns_app, acme)
    login(acme_site, "owner@acme.example")
    assert post_form(acme_site, f"/admin/resellers/{acme.info.id}/domains/{acme_id}/verify",
                     {}, token_from="/settings/domains").status_code in (403, 404)


def test_a_pending_domain_keeps_its_last_check_for_its_own_reseller_only(
        app, dns_app, dns, platform, acme, globex, make_user, api_caller, at):
    from jobs.registry import get_task

    start = at(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    acme_id, acme_token = _attach(app, acme, ACME_HOST)
    _globex_id, globex_token = _attach(app, globex, GLOBEX_HOST)
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(globex, "owner@acme.example", role="RESELLER")  # a look-alike owner
    make_user(platform, "admin@example.com", role="ADMIN")
    owner = api_caller(acme, role="RESELLER", email="owner@acme.example")
    rival = api_caller(globex, role="RESELLER", email="owner@acme.example")
    acme_site, globex_site, operator = _on(dns_app, acme), _on(dns_app, globex), _on(
        dns_app, platform)
    for site, email in ((acme_site, "owner@acme.example"), (globex_site, "owner@acme.example"),
                        (operator, "admin@example.com")):
        login(site, email)

    def listed(site, caller) -> list[dict]:
        return site.client.get("/api/v1/tenant/domains", headers=caller.headers).get_json()[
            "items"]

    def lines(site, path) -> list[str]:
        html = site.client.get(path).get_data(as_text=True)
        return re.findall(r'data-testid="last-check">([^<]*)<', html)

    [never] = listed(acme_site, owner)
    assert (never["last_checked_at"], never["last_check_code"],
            never["last_check_problem"]) == (None, None, None)
    assert lines(acme_site, "/settings/domains") == []

    # The background re-check, with nobody watching: acme has no record yet, globex's
    # record holds acme's token (a different value). Each row keeps its own outcome.
    dns.set_txt(f"_domain-verification.{GLOBEX_HOST}", acme_token)
    at(start + timedelta(minutes=15))
    with dns_app.app_context():
        assert get_task("tenants.recheck_domains").func() == {"verified": 0}
    [mine] = listed(acme_site, owner)
    assert (mine["hostname"], mine["last_check_code"]) == (ACME_HOST, "no_record")
    assert mine["last_checked_at"].startswith("2026-03-02T09:15:00")
    assert "There is no TXT record named _domain-verification." + ACME_HOST in (
        mine["last_check_problem"])
    [theirs] = listed(globex_site, rival)
    assert (theirs["hostname"], theirs["last_check_code"]) == (GLOBEX_HOST, "wrong_value")
    assert globex_token in theirs["last_check_problem"]
    # What globex's DNS held (acme's token) is never kept, so never shown to anyone.
    assert acme_token not in json.dumps(theirs) and ACME_HOST not in json.dumps(theirs)
    assert lines(acme_site, "/settings/domains") == [
        "Last checked 2026-03-02 09:15 UTC: no record yet"]
    assert lines(globex_site, "/settings/domains") == [
        "Last checked 2026-03-02 09:15 UTC: a different value"]
    assert lines(operator, f"/admin/resellers/{acme.info.id}") == [
        "Last checked 2026-03-02 09:15 UTC: no record yet"]
    assert lines(operator, f"/admin/resellers/{globex.info.id}") == [
        "Last checked 2026-03-02 09:15 UTC: a different value"]
    admin = api_caller(platform, role="ADMIN", email="admin@example.com")
    reseller = operator.client.get(f"/api/v1/platform/resellers/{acme.info.id}",
                                   headers=admin.headers).get_json()
    assert [(d["hostname"], d["last_check_code"]) for d in reseller["domains"]] == [
        (ACME_HOST, "no_record")]

    # Acme's own "Verify now" updates its row only; once verified, nothing is in the way.
    at(start + timedelta(minutes=20))
    dns.set_txt(f"_domain-verification.{ACME_HOST}", acme_token)
    acme_api = host_client(dns_app, acme.host)
    done = acme_api.post(f"/api/v1/tenant/domains/{acme_id}/verify",
                         headers=owner.headers).get_json()
    assert done["verified"] is True and done["last_check_code"] is None
    assert done["last_checked_at"].startswith("2026-03-02T09:20:00")
    assert done["last_check_problem"] is None
    assert lines(acme_site, "/settings/domains") == []
    [still] = listed(globex_site, rival)
    assert (still["last_check_code"], still["last_checked_at"]) == (
        "wrong_value", theirs["last_checked_at"])
