"""Every page in each role's navigation, at 1280 and 375 px: it fits the window, logs no
console error, and axe-core finds no serious or critical accessibility violation."""

import pytest

from tests import browser_support as bs
from tests.dashboard_data import seed_dashboard

browser, live_server = bs.browser, bs.live_server  # the shared fixtures

pytestmark = [pytest.mark.browser, bs.needs_chromium]

# Named, narrow exceptions, each with the reason it is not fixed here. The audit page's
# filters are rewritten by the audit-log work (issue 12, item 8) in another branch.
KNOWN = {("/audit", "axe: select-name"): "audit filters: issue 12 item 8"}


def _known(problem: str) -> bool:
    return any(f"{path} @" in problem and what in problem for path, what in KNOWN)


@pytest.mark.parametrize("role", ["ADMIN", "RESELLER", "USER"])
def test_every_navigation_page_fits_and_passes_axe(app, platform, acme, globex, make_user,
                                                   live_server, browser, role):
    accounts = seed_dashboard(app, platform, acme, globex, make_user)
    site, email = accounts[role]
    problems = [p for p in bs.sweep(browser, f"http://{site.host}:{live_server}", email)
                if not _known(p)]
    assert problems == [], "\n".join(problems)
