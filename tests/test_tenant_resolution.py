"""Host → tenant: every request is resolved from its Host header, never a default tenant."""

import re

import pytest

from tenants.hosts import normalise_host


@pytest.mark.parametrize("raw, expected", [
    ("acme.localhost", "acme.localhost"),
    ("ACME.LocalHost:5000", "acme.localhost"),
    ("acme.localhost.", "acme.localhost"),
    ("Acme.LOCALHOST.:8080", "acme.localhost"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("[::1]:5000", "[::1]"),
    ("", None),
    ("bad host", None),
    ("a..b", None),
    ("host:port", None),
    ("-lead.example", None),
])
def test_normalise_host(raw, expected):
    assert normalise_host(raw) == expected


def _brand(response) -> str:
    html = response.get_data(as_text=True)
    start = html.index('data-testid="brand-name">') + len('data-testid="brand-name">')
    return html[start:html.index("<", start)]


def test_platform_and_reseller_hosts_serve_their_own_branding(app, platform, acme):
    assert _brand(platform.client.get("/login")) == "Albedo"
    page = acme.client.get("/login")
    assert page.status_code == 200
    assert _brand(page) == "Acme Agents"
    html = page.get_data(as_text=True)
    theme = re.search(r'href="(/theme\.css\?v=[0-9a-f]+)"', html).group(1)
    assert "--brand-primary:#e11d48" in acme.client.get(theme).get_data(as_text=True)
    assert "Albedo" not in html


def test_port_uppercase_and_trailing_dot_resolve_to_the_same_tenant(app, acme):
    client = app.test_client()
    for host in ("ACME.localhost:5000", "acme.localhost.", "Acme.Localhost.:80"):
        response = client.get("/login", headers={"Host": host})
        assert response.status_code == 200, host
        assert _brand(response) == "Acme Agents"


def test_unknown_host_is_404_page_and_json_envelope_under_api(app, acme):
    client = app.test_client()
    page = client.get("/login", headers={"Host": "nobody.localhost"})
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert "Acme" not in page.get_data(as_text=True)
    api = client.get("/api/v1/tenant", headers={"Host": "nobody.localhost"})
    assert api.status_code == 404
    assert api.get_json()["error"]["code"] == "tenant_not_found"
    assert api.get_json()["error"]["request_id"]
    # No default tenant: an IP address or a bare unknown name is not served either.
    assert client.get("/api/v1/tenant", headers={"Host": "127.0.0.1"}).status_code == 404


def test_verified_custom_domain_resolves_unverified_does_not(app, acme, globex):
    from app.extensions import db
    from tenants.models import Tenant
    from tenants.service import add_domain, mark_domain_verified

    with app.app_context():
        tenant = db.session.get(Tenant, acme.info.id)
        mark_domain_verified(add_domain(tenant, "agents.acme-corp.example"))
        add_domain(db.session.get(Tenant, globex.info.id), "ai.globex.example")  # unverified
        db.session.commit()
    client = app.test_client()
    ok = client.get("/api/v1/tenant", headers={"Host": "agents.acme-corp.example"})
    assert ok.status_code == 200 and ok.get_json()["slug"] == "acme"
    missing = client.get("/api/v1/tenant", headers={"Host": "ai.globex.example"})
    assert missing.status_code == 404


def test_verifying_a_domain_takes_effect_without_waiting_for_the_cache(app, acme):
    from app.extensions import db
    from tenants.models import Domain, Tenant
    from tenants.service import add_domain, mark_domain_verified

    client = app.test_client()
    with app.app_context():
        add_domain(db.session.get(Tenant, acme.info.id), "agents.acme-corp.example")
        db.session.commit()
    assert client.get("/api/v1/tenant",
                      headers={"Host": "agents.acme-corp.example"}).status_code == 404
    from tenants.context import activate

    with app.app_context(), activate(acme.info):  # an unverified domain is its tenant's (RLS)
        domain = db.session.query(Domain).filter_by(hostname="agents.acme-corp.example").one()
        mark_domain_verified(domain)
        db.session.commit()
    assert client.get("/api/v1/tenant",
                      headers={"Host": "agents.acme-corp.example"}).status_code == 200


def test_spoofed_x_forwarded_host_is_ignored(app, acme, globex):
    response = acme.client.get("/api/v1/tenant", headers={"X-Forwarded-Host": "globex.localhost"})
    assert response.get_json()["slug"] == "acme"
    unknown = app.test_client().get("/api/v1/tenant", headers={
        "Host": "nobody.localhost", "X-Forwarded-Host": "acme.localhost"})
    assert unknown.status_code == 404


def test_x_forwarded_host_is_honoured_behind_a_configured_proxy(migrated, acme):
    from app import create_app

    app = create_app(migrated.with_overrides(proxy_count=1))
    response = app.test_client().get("/api/v1/tenant", headers={
        "Host": "10.0.0.5", "X-Forwarded-Host": "acme.localhost"})
    assert response.get_json()["slug"] == "acme"


def test_suspended_tenant_is_403(app, acme, globex):
    from app.extensions import db
    from tenants.models import Tenant
    from tenants.service import set_status

    with app.app_context():
        set_status(db.session.get(Tenant, acme.info.id), "suspended")
        db.session.commit()
    api = acme.client.get("/api/v1/tenant")
    assert api.status_code == 403
    assert api.get_json()["error"]["code"] == "tenant_suspended"
    assert acme.client.get("/login").status_code == 403
    assert globex.client.get("/api/v1/tenant").status_code == 200


def test_health_probes_answer_on_any_host(app):
    client = app.test_client()
    assert client.get("/healthz", headers={"Host": "10.1.2.3"}).status_code == 200
    ready = client.get("/readyz", headers={"Host": "10.1.2.3"})
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_absolute_urls_use_the_primary_domain_not_the_request_host(app, acme):
    from app.extensions import db
    from tenants.models import Tenant
    from tenants.service import add_domain, mark_domain_verified, set_primary_domain

    with app.app_context():
        domain = add_domain(db.session.get(Tenant, acme.info.id), "agents.acme-corp.example")
        mark_domain_verified(domain)
        set_primary_domain(domain)
        db.session.commit()
    # Requested on the subdomain, with a forged X-Forwarded-Host: links still name the primary.
    body = acme.client.get("/api/v1/tenant",
                           headers={"X-Forwarded-Host": "evil.example"}).get_json()
    assert body["base_url"] == "http://agents.acme-corp.example:5000"
