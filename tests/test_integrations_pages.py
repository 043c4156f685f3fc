"""The integrations pages: a customer and a reseller manage endpoints, see deliveries and
attempts, send a test event and replay; another tenant's user sees none of it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Site, host_client, login
from tests.fakes.receiver import start_receiver
from tests.fakes.webhooks import app_allowing, drain


@pytest.fixture
def receiver():
    r = start_receiver()
    yield r
    r.close()


@pytest.fixture
def hooks_app(app, migrated, receiver):
    with app_allowing(migrated, receiver.port) as application:
        yield application


def _site(application, site) -> Site:
    return Site(info=site.info, host=site.host, client=host_client(application, site.host))


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_a_customer_adds_an_endpoint_tests_it_and_replays(hooks_app, acme, globex, make_user,
                                                          receiver):
    make_user(acme, "ann@example.com")
    make_user(globex, "ann@example.com")
    ann, globex_ann = _site(hooks_app, acme), _site(hooks_app, globex)
    assert login(ann, "ann@example.com").status_code == 302
    assert login(globex_ann, "ann@example.com").status_code == 302

    page = ann.client.get("/integrations")
    assert page.status_code == 200 and "Add an endpoint" in page.get_data(as_text=True)
    refused = ann.client.post("/integrations", data={
        "url": "http://10.0.0.1/x", "csrf_token": _csrf(page.get_data(as_text=True))})
    assert refused.status_code == 422 and "cannot receive webhooks" in refused.get_data(
        as_text=True)
    created = ann.client.post("/integrations", data={
        "url": receiver.url(), "description": "CRM", "event_types": ["license.created"],
        "csrf_token": _csrf(page.get_data(as_text=True))})
    html = created.get_data(as_text=True)
    assert created.status_code == 200 and "whsec_" in html
    endpoint_path = re.search(r'href="(/integrations/endpoints/[^"]+)"', html).group(1)

    # The other tenant's user with the same email sees nothing and cannot open it.
    assert receiver.url() not in globex_ann.client.get("/integrations").get_data(as_text=True)
    assert globex_ann.client.get(endpoint_path).status_code == 404

    detail = ann.client.get(endpoint_path).get_data(as_text=True)
    sent = ann.client.post(f"{endpoint_path}/test", data={"csrf_token": _csrf(detail)})
    assert sent.status_code == 302
    drain(hooks_app)
    assert len(receiver.requests) == 1
    detail = ann.client.get(endpoint_path).get_data(as_text=True)
    delivery_path = re.search(r'href="(/integrations/deliveries/[^"]+)"', detail).group(1)
    delivery = ann.client.get(delivery_path).get_data(as_text=True)
    assert "succeeded" in delivery and "webhook.test" in delivery and "ms</td>" in delivery
    assert globex_ann.client.get(delivery_path).status_code == 404

    replayed = ann.client.post(f"{delivery_path}/replay", data={"csrf_token": _csrf(delivery)})
    assert replayed.status_code == 302
    drain(hooks_app)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers[
        "webhook-id"]
    # Without the CSRF token nothing happens.
    assert ann.client.post(f"{endpoint_path}/test").status_code == 400
    drain(hooks_app)
    assert len(receiver.requests) == 2


def test_examples_use_the_tenants_own_domain_and_the_page_needs_sign_in(app, acme, make_user):
    assert acme.client.get("/integrations").status_code in (302, 401)
    make_user(acme, "team@example.com", role="RESELLER")
    login(acme, "team@example.com")
    html = acme.client.get("/integrations").get_data(as_text=True)
    assert f"//{acme.host}" in html and "/api/v1/hooks" in html and "Header Auth" in html
    assert "Albedo" not in html
