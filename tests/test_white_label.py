"""On a reseller's domain nothing a customer can reach says "Albedo": pages (crawled from the
navigation, links and assets), API documents, error pages, emails and DNS record names."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from jinja2 import ChainableUndefined

from tests.conftest import host_client, login
from tests.dashboard_data import CUSTOMER, OWNER, seed_dashboard

CUSTOM_HOST = "portal.acme-agents.test"
FORBIDDEN = re.compile(r"Albedo|ALBEDO_")
# Never followed: they end the session or change state on GET-less forms.
SKIP = ("/logout",)
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "emails"


def _on_custom_domain(app, acme):
    """acme's verified, primary custom domain (the host its customers use)."""
    from app.extensions import db
    from tenants import platform as platform_ops
    from tenants.context import activate
    from tenants.models import Tenant

    with app.app_context(), activate(acme.info):
        tenant = db.session.get(Tenant, acme.info.id)
        platform_ops.attach_domain(tenant, CUSTOM_HOST, True, True, actor=None)
        db.session.commit()
    return host_client(app, CUSTOM_HOST)


def _links(html: str, base: str) -> list[str]:
    found = re.findall(r'(?:href|src)="([^"#]+)"', html)
    out = []
    for href in found:
        url = urljoin(base, href.replace("&amp;", "&"))
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "") and parts.netloc in ("", CUSTOM_HOST):
            out.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return out


def _crawl(client, start: list[str], limit: int = 200) -> dict[str, str]:
    """GET every same-host page and asset reachable from ``start``; {path: problem}."""
    seen: set[str] = set()
    queue = deque(start)
    problems: dict[str, str] = {}
    while queue and len(seen) < limit:
        path = queue.popleft()
        if path in seen or path.startswith(SKIP) or path.startswith("mailto:"):
            continue
        seen.add(path)
        response = client.get(path)
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        body = response.get_data(as_text=True) if response.mimetype.startswith(
            ("text/", "application/json", "application/javascript")) else ""
        hit = FORBIDDEN.search(headers + "\n" + body)
        if hit:
            start_at = max(hit.start() - 60, 0)
            problems[path] = (headers + "\n" + body)[start_at:hit.end() + 60]
        if response.status_code in (301, 302, 303) and "Location" in response.headers:
            queue.extend(_links(f'href="{response.headers["Location"]}"',
                                f"http://{CUSTOM_HOST}{path}"))
        if response.mimetype == "text/html":
            queue.extend(_links(body, f"http://{CUSTOM_HOST}{path}"))
    assert len(seen) > 5, f"the crawl reached only {sorted(seen)}"
    return problems


def test_a_customer_never_reads_albedo_on_a_resellers_domain(app, platform, acme, globex,
                                                             make_user, api_caller):
    seed_dashboard(app, platform, acme, globex, make_user)
    client = _on_custom_domain(app, acme)
    # Signed out: sign-in, sign-up, password reset, API docs, an unknown page.
    anonymous = _crawl(client, ["/login", "/signup", "/forgot-password", "/api/docs",
                                "/api/v1/openapi.json", "/no-such-page", "/api/v1/nothing"])
    assert anonymous == {}, anonymous
    # Signed in as a customer: everything the navigation and its pages link to.
    from tests.conftest import Site

    site = Site(info=acme.info, host=CUSTOM_HOST, client=client)
    assert login(site, CUSTOMER).status_code == 302
    signed_in = _crawl(client, ["/", "/api/docs", "/api/v1/openapi.json"])
    assert signed_in == {}, signed_in
    # The OpenAPI text carries the reseller's name and none of the platform's settings.
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["info"]["title"] == "Acme Agents API"
    assert client.get("/api/docs").status_code == 200
    # The platform's own document keeps its name: the rewrite is per tenant, not global.
    assert FORBIDDEN.search(platform.client.get("/api/v1/openapi.json").get_data(as_text=True))
    # The API's answers to a customer's key, errors included.
    key = api_caller(acme, email=CUSTOMER)
    for path in ("/api/v1/me", "/api/v1/agents", "/api/v1/executions", "/api/v1/agents/usage",
                 "/api/v1/billing/plans", "/api/v1/nothing-here"):
        answer = client.get(path, headers=key.headers).get_data(as_text=True)
        assert not FORBIDDEN.search(answer), (path, answer[:300])


def test_every_email_a_customer_can_get_is_in_the_resellers_words(app, platform, acme,
                                                                   globex, make_user):
    from sqlalchemy import select

    from app.email.models import OutboundEmail
    from app.email.service import render
    from tenants.context import activate

    seed_dashboard(app, platform, acme, globex, make_user)
    client = _on_custom_domain(app, acme)
    page = client.get("/forgot-password").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    client.post("/forgot-password", data={"email": CUSTOMER, "csrf_token": token})
    signup = client.get("/signup").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', signup).group(1)
    for email in ("new@customer.example", CUSTOMER):  # a new account, and one that exists
        client.post("/signup", data={"email": email, "password": "correct horse battery",
                                     "name": "New", "csrf_token": token})
    with app.app_context(), activate(acme.info):
        from app.extensions import db

        rows = db.session.scalars(select(OutboundEmail)).all()
        assert {r.template for r in rows} >= {"password_reset"}, [r.template for r in rows]
        for row in rows:
            text = "\n".join((row.subject, row.html_body, row.text_body, row.from_name,
                              row.reply_to or ""))
            assert not FORBIDDEN.search(text), (row.template, FORBIDDEN.search(text))
        # Every email template, rendered in acme's branding with whatever context it takes.
        previous = app.jinja_env.undefined
        app.jinja_env.undefined = ChainableUndefined
        try:
            with app.test_request_context(base_url=f"http://{CUSTOM_HOST}"):
                for path in sorted(TEMPLATES.glob("*.subject.txt")):
                    name = path.name.removesuffix(".subject.txt")
                    subject, html, text = render(name, {}, acme.info)
                    whole = "\n".join((subject, html, text))
                    assert not FORBIDDEN.search(whole), (name, FORBIDDEN.search(whole))
        finally:
            app.jinja_env.undefined = previous


def test_dns_records_and_api_errors_name_no_platform(app, platform, acme, globex, make_user):
    seed_dashboard(app, platform, acme, globex, make_user)
    client = _on_custom_domain(app, acme)
    from tests.conftest import Site

    login(Site(info=acme.info, host=CUSTOM_HOST, client=client), OWNER)
    page = client.get("/settings/domains").get_data(as_text=True)
    assert f"_domain-verification.{CUSTOM_HOST}" in page
    assert "albedo" not in page.lower()
    # A customer's billing page without Stripe names the seller, not the setup.
    customer = Site(info=acme.info, host=CUSTOM_HOST, client=host_client(app, CUSTOM_HOST))
    login(customer, CUSTOMER)
    html = customer.client.get("/billing").get_data(as_text=True)
    assert "not configured" not in html and "Payments are not available yet" in html
