"""A real browser (Playwright driving Debian's chromium) sees each tenant's branding."""

import pytest

from tests import browser_support as bs

pytestmark = [pytest.mark.browser, bs.needs_chromium]
CHROMIUM, CHROMIUM_ARGS = bs.CHROMIUM, bs.CHROMIUM_ARGS  # other tests import these from here
browser, live_server = bs.browser, bs.live_server  # the shared fixtures


def test_login_pages_show_two_brandings(live_server, browser, platform, acme, make_user,
                                        tmp_path):
    make_user(acme, "customer@acme.example", name="Casey")
    page = browser.new_page()
    page.goto(f"http://localhost:{live_server}/login")
    assert page.get_by_test_id("brand-name").inner_text() == "Albedo"
    platform_colour = page.get_by_test_id("brand-header").evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert platform_colour == "rgb(17, 24, 39)"

    page.goto(f"http://acme.localhost:{live_server}/login")
    assert page.get_by_test_id("brand-name").inner_text() == "Acme Agents"
    assert page.get_by_test_id("brand-header").evaluate(
        "e => getComputedStyle(e).backgroundColor") == "rgb(225, 29, 72)"
    assert "Albedo" not in page.content()
    page.screenshot(path=str(tmp_path / "acme-login.png"))

    page.fill("#email", "customer@acme.example")
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"http://acme.localhost:{live_server}/")
    assert "Welcome, Casey" in page.content()
