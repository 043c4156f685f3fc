"""A real browser (Playwright driving Debian's chromium) sees each tenant's branding."""

import shutil
import threading

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install "
                                                "chromium); CI installs it"),
]
# Flags the sandboxed CI machine needs: no sandbox as root, no background network calls.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture
def live_server(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


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
