"""Every page in each role's navigation, at 1280 and 375 px: it fits the window, logs no
console error, and axe-core finds no serious or critical accessibility violation."""

import pytest

from tests import browser_support as bs
from tests.dashboard_data import seed_dashboard

browser, live_server = bs.browser, bs.live_server  # the shared fixtures

pytestmark = [pytest.mark.browser, bs.needs_chromium]

EXPECTED = {
    "ADMIN": ["/", "/admin/resellers", "/admin/outbox", "/audit", "/settings/api-keys"],
    # The filter forms (audit log, executions) are checked like everything else: no excuses.
    "RESELLER": ["/audit", "/agents/executions", "/settings/branding", "/settings/domains",
                 "/licensing/licenses", "/licensing/policies", "/licensing/products",
                 "/api/docs", "/agents", "/integrations", "/billing"],
    "USER": ["/agents", "/agents/executions", "/my/licenses", "/settings/api-keys",
             "/api/docs", "/billing", "/account"],
}


@pytest.mark.parametrize("role", ["ADMIN", "RESELLER", "USER"])
def test_every_navigation_page_fits_and_passes_axe(app, platform, acme, globex, make_user,
                                                   live_server, browser, role):
    accounts = seed_dashboard(app, platform, acme, globex, make_user)
    site, email = accounts[role]
    checked: list[str] = []
    problems = bs.sweep(browser, f"http://{site.host}:{live_server}", email, checked=checked)
    assert problems == [], "\n".join(problems)
    # The sweep reached the pages behind the navigation too (tabs, detail pages, docs).
    assert set(EXPECTED[role]) <= set(checked), sorted(checked)


def test_signed_out_pages_fit_and_pass_axe(app, platform, acme, globex, make_user,
                                           live_server, browser):
    seed_dashboard(app, platform, acme, globex, make_user)
    context = browser.new_context()
    page = context.new_page()
    watch = bs.PageWatch()
    watch.attach(page)
    problems = []
    for width in bs.WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        # The platform takes no sign-ups; an unknown page is a 404 by design (its page is
        # still checked for layout and accessibility).
        for site, paths in ((platform, ("/login", "/forgot-password", "/no-such-page")),
                            (acme, ("/login", "/signup", "/forgot-password", "/no-such-page"))):
            for path in paths:
                url = f"http://{site.host}:{live_server}{path}"
                problems += [p for p in bs.check_page(page, url, watch)
                             if not (path == "/no-such-page" and "404" in p)]
    context.close()
    assert problems == [], "\n".join(problems)


def test_pages_while_signed_in_as_a_customer_fit_and_pass_axe(app, platform, acme, globex,
                                                              make_user, live_server,
                                                              browser):
    """The support banner (a layout include) and the customer list's confirm dialog."""
    from tests.dashboard_data import CUSTOMER, OWNER

    seed_dashboard(app, platform, acme, globex, make_user)
    base = f"http://{acme.host}:{live_server}"
    context = browser.new_context(viewport={"width": bs.WIDTHS[0], "height": 900})
    page = context.new_page()
    watch = bs.PageWatch()
    watch.attach(page)
    bs.sign_in(page, base, OWNER)
    page.goto(f"{base}/people/customers")
    page.locator("[data-testid=people] tr", has_text=CUSTOMER).get_by_test_id(
        "sign-in-as").click()
    problems = [f"confirm dialog: {v}" for v in bs.axe_violations(page)]
    page.locator("#confirm-dialog [data-confirm-yes]").click()
    page.wait_for_url(f"{base}/")
    for width in bs.WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for path in ("/", "/agents", "/account"):
            problems += bs.check_page(page, f"{base}{path}", watch)
            assert page.get_by_test_id("sign-in-as-banner").is_visible()
    context.close()
    assert problems == [], "\n".join(problems)
