"""People flows in a real browser (Playwright driving Debian's chromium): onboarding through
the invitation email, inviting and deactivating a customer, signing in as a customer and
back with a refused password change in between."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.accounts_support import path_of, sent_emails
from tests.test_browser import CHROMIUM, browser, live_server  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install "
                                                "chromium); CI installs it"),
]
PASSWORD = "correct horse battery"


def _sign_in(page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _submit(page, selector: str) -> None:
    """Click a form's button, confirming when the layout asks (destructive actions)."""
    page.click(selector)
    confirm = page.locator("[data-confirm-yes]")
    if confirm.count() and confirm.first.is_visible():
        confirm.first.click()
    page.wait_for_load_state()


def _actions(app, site) -> list[str]:
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(site.info):
        return [e.action for e in db.session.scalars(
            select(AuditEvent).order_by(AuditEvent.created_at))]


def test_onboarding_invitation_set_password_sign_in(app, live_server, browser,  # noqa: F811
                                                    platform, make_user):
    make_user(platform, "admin@example.com", role="ADMIN")
    page = browser.new_page()
    platform_base = f"http://localhost:{live_server}"
    _sign_in(page, platform_base, "admin@example.com")
    page.goto(f"{platform_base}/admin/resellers")
    page.fill("#slug", "initech")
    page.fill("#name", "Initech")
    page.fill("#owner_email", "boss@initech.example")
    page.click("text=Create and invite the owner")
    page.wait_for_url("**/admin/resellers/*")
    assert "boss@initech.example" in page.content()  # the invitation waits

    from tests.conftest import Site, host_client

    with app.app_context():
        from tenants.service import get_by_slug, info_for

        info = info_for(get_by_slug("initech"))
    initech = Site(info=info, host=info.primary_host, client=host_client(app, info.primary_host))
    [email] = sent_emails(app, initech, "invitation")
    assert "Albedo" not in email.text
    base = f"http://initech.localhost:{live_server}"
    invited = browser.new_page()
    invited.goto(base + path_of(email.link))
    assert invited.get_by_test_id("invited-email").inner_text() == "boss@initech.example"
    invited.fill("#password", "a new shiny passphrase")
    invited.fill("#confirm", "a new shiny passphrase")
    invited.click("button[type=submit]")
    invited.wait_for_url(f"{base}/login")
    _sign_in(invited, base, "boss@initech.example", "a new shiny passphrase")
    assert invited.get_by_test_id("setup-checklist").is_visible()
    assert "Albedo" not in invited.content()


def test_invite_and_deactivate_a_customer(app, live_server, browser, acme,  # noqa: F811
                                          make_user):
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(acme, "casey@example.com")
    page = browser.new_page()
    base = f"http://acme.localhost:{live_server}"
    _sign_in(page, base, "owner@acme.example")
    page.goto(f"{base}/people/customers")
    page.fill("#email", "dana@example.com")
    page.click("text=Send invitation")
    page.wait_for_url(f"{base}/people/customers")
    assert "Invitation sent to dana@example.com" in page.content()
    assert page.get_by_test_id("invitations").inner_text().count("dana@example.com") == 1
    assert [e.to for e in sent_emails(app, acme, "invitation")] == ["dana@example.com"]

    row = page.locator("[data-testid=people] tr", has_text="casey@example.com")
    _submit(page, "[data-testid=people] tr:has-text('casey@example.com') >> text=Deactivate")
    page.wait_for_url(f"{base}/people/customers")
    assert "deactivated" in row.inner_text()
    assert "user_deactivated" in _actions(app, acme)


def test_sign_in_as_a_customer_and_back(app, live_server, browser, acme,  # noqa: F811
                                        make_user):
    make_user(acme, "owner@acme.example", role="RESELLER")
    casey = make_user(acme, "casey@example.com", name="Casey")
    page = browser.new_page()
    base = f"http://acme.localhost:{live_server}"
    _sign_in(page, base, "owner@acme.example")
    # From the customer list, asked first in the layout's confirm dialog.
    page.goto(f"{base}/people/customers")
    page.locator("[data-testid=people] tr", has_text="casey@example.com").get_by_test_id(
        "sign-in-as").click()
    dialog = page.locator("#confirm-dialog")
    assert dialog.is_visible() and "casey@example.com" in dialog.inner_text()
    dialog.locator("[data-confirm-yes]").click()
    page.wait_for_url(f"{base}/")
    assert "Welcome, Casey" in page.content()
    # The banner is the layout's: on every page, saying who is signed in as whom.
    for path in ("/", "/agents", "/settings/api-keys"):
        page.goto(f"{base}{path}")
        banner = page.get_by_test_id("sign-in-as-banner")
        assert banner.is_visible(), path
        assert "owner@acme.example" in banner.inner_text()
        assert "casey@example.com" in banner.inner_text()

    page.goto(f"{base}/account")
    page.fill("#password", "hijacked password 123")
    page.fill("#confirm", "hijacked password 123")
    page.click("text=Save password")
    page.wait_for_load_state()
    assert "signed in as someone else" in page.content()

    page.get_by_test_id("sign-in-as-end").click()
    page.wait_for_url(f"{base}/people/customers/{casey}")
    assert page.get_by_test_id("sign-in-as-banner").count() == 0
    page.goto(f"{base}/agents")
    assert page.get_by_test_id("sign-in-as-banner").count() == 0
    actions = _actions(app, acme)
    assert "sign_in_as_started" in actions and "sign_in_as_ended" in actions
    assert "password_changed" not in actions
