"""The widget in a real browser, embedded in a page of another origin (a second local port).

The site (acme.localhost:<port>) serves /widget.js and the API; a shop page on
localhost:<port2> embeds it. The allowed origin gets a streamed answer that survives a
reload, also at 375 px and inline; 127.0.0.1:<port2> (same page, another origin) is refused,
and so are a token replayed there, an expired token and a revoked key.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from app import clock
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agents_app,
    wait_until,
)
from tests.conftest import host_client
from tests.fakes.openai_server import Step
from tests.widget_support import make_widget

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install "
                                                "chromium); CI installs it"),
]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent
# The host page's own styles: the widget must not be affected by them.
HOSTILE_CSS = "<style>* { font-size: 40px !important; color: lime !important; }" \
              " button { display: none !important; }</style>"


def _shop_server(site_base: str) -> ThreadingHTTPServer:
    class Shop(BaseHTTPRequestHandler):
        def do_GET(self):
            query = parse_qs(urlsplit(self.path).query)
            if "key" not in query:  # the browser's favicon request
                self.send_error(404)
                return
            key = query["key"][0]
            inline = query.get("mode", [""])[0] == "inline"
            attrs = ' data-mode="inline" data-target="#chat"' if inline else ""
            page = (f"<!doctype html><html><head><meta name=viewport "
                    f"content='width=device-width'>{HOSTILE_CSS}</head><body><h1>Shop</h1>"
                    f"<div id=chat style='height:420px'></div>"
                    f'<script src="{site_base}/widget.js" data-key="{key}"{attrs} async>'
                    f"</script></body></html>").encode()
            self.send_response(200)
            if query.get("csp"):  # a strict policy, as docs/widget.md tells hosts to write
                self.send_header("Content-Security-Policy",
                                 f"default-src 'self'; script-src {site_base}; "
                                 f"connect-src {site_base}; style-src 'self'")
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def embedded(make_agents_app, fake, acme, globex, api_caller, test_environ):
    """The site, a worker, the shop page's server and a key allowing http://localhost:<shop>."""
    from werkzeug.serving import make_server

    application = make_agents_app()
    site = make_server("127.0.0.1", 0, application, threaded=True)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    site_base = f"http://acme.localhost:{site.server_port}"
    shop = _shop_server(site_base)
    allowed = f"http://localhost:{shop.server_port}"
    owner = api_caller(acme, email="ann@example.com")
    api_caller(globex, email="ann@example.com")
    client = host_client(application, acme.host)
    key = make_widget(client, owner.headers, origins=(allowed,),
                      appearance={"name": "Shop helper", "primary_color": "#0f766e",
                                  "greeting": "Welcome to the shop!"})
    env = {**test_environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-platform"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobs.worker", "--queue", "agents"], cwd=ROOT, env=env,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield {"browser": browser, "key": key, "allowed": allowed,
               "other": f"http://127.0.0.1:{shop.server_port}", "site": site_base,
               "client": client, "owner": owner, "fake": fake}
        browser.close()
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(30)
    shop.shutdown()
    site.shutdown()


def _url(env, origin: str, mode: str = "", csp: str = "") -> str:
    return f"{origin}/shop?key={env['key']['key']}&mode={mode}&csp={csp}"


def _page(env, origin: str, mode: str = "", csp: str = "", **options):
    page = env["browser"].new_page(**options)
    page.goto(_url(env, origin, mode, csp))
    return page


def _refused_page(env, origin: str):
    """A page whose widget says it is not available here (and renders nothing)."""
    page = env["browser"].new_page()
    with page.expect_console_message(predicate=lambda m: "not available" in m.text,
                                     timeout=30_000):
        page.goto(_url(env, origin))
    assert page.locator(".launcher").count() == 0
    return page


def test_the_widget_streams_an_answer_and_keeps_the_conversation(embedded):
    env = embedded
    env["fake"].script = [Step(text="Your parcel ships today", stall_after_chunks=2)]
    page = _page(env, env["allowed"])
    launcher = page.locator(".launcher")  # Playwright's CSS pierces the open shadow root
    launcher.wait_for(timeout=30_000)
    # Keyboard only: focus the launcher, open, type, Enter.
    launcher.focus()
    page.keyboard.press("Enter")
    assert launcher.get_attribute("aria-expanded") == "true"
    page.locator(".msg.assistant", has_text="Welcome to the shop!").wait_for(timeout=30_000)
    assert page.locator("h2").inner_text() == "Shop helper"
    assert page.locator("header").evaluate("e => getComputedStyle(e).backgroundColor") == \
        "rgb(15, 118, 110)"
    # The host page's hostile CSS does not reach inside.
    assert page.locator(".launcher").is_visible()
    assert page.locator("textarea").evaluate("e => getComputedStyle(e).fontSize") != "40px"
    page.keyboard.type("where is my parcel?")
    page.keyboard.press("Enter")
    answer = page.locator(".msg.assistant").last
    # Mid-stream: the first tokens show while the provider still holds the rest.
    assert env["fake"].stalled.wait(60)
    answer.filter(has_text="Your parcel").wait_for(timeout=30_000)
    assert "today" not in answer.inner_text()
    env["fake"].release.set()
    answer.filter(has_text="Your parcel ships today").wait_for(timeout=30_000)
    # The last token shows before the worker commits the turn to the conversation; the
    # stream's end (the bubble no longer busy) comes after that commit. Reloading before it
    # raced the worker's commit (a loaded machine lost it): the history was still empty.
    page.locator(".msg.assistant[aria-busy]").wait_for(state="detached", timeout=30_000)

    # A reload: the same visitor (localStorage) sees the conversation so far.
    page.reload()
    page.locator(".msg.user", has_text="where is my parcel?").wait_for(timeout=30_000)
    assert page.locator(".msg.assistant").last.inner_text() == "Your parcel ships today"

    # 375 px wide: the open panel fits the screen, its input and button usable.
    phone = _page(env, env["allowed"], viewport={"width": 375, "height": 667})
    phone.locator(".launcher").click()
    box = phone.locator(".panel").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    assert phone.locator("textarea").is_visible() and phone.locator("form button").is_visible()

    # Inline mode: rendered inside the page's element, no launcher. The page has a strict
    # Content-Security-Policy (no inline styles): the widget is still styled and works.
    inline = _page(env, env["allowed"], mode="inline", csp="1")
    inline.locator("#chat .panel").wait_for(timeout=30_000)
    assert inline.locator(".launcher").count() == 0
    assert inline.locator("header").evaluate("e => getComputedStyle(e).backgroundColor") == \
        "rgb(15, 118, 110)"
    # (A new browser context: a new visitor, so the greeting rather than the thread.)
    inline.locator(".msg.assistant", has_text="Welcome to the shop!").wait_for(timeout=30_000)


def test_other_origins_stale_tokens_and_revoked_keys_are_refused(embedded, at):
    env = embedded
    # Another origin (same page, same server, 127.0.0.1 instead of localhost): nothing shows.
    stranger = _refused_page(env, env["other"])

    # A token taken on the allowed page and replayed from the other origin: refused.
    friend = _page(env, env["allowed"])
    friend.locator(".launcher").wait_for(timeout=30_000)
    api = f"{env['site']}/api/v1/widget/embed/{env['key']['key']}"
    token = friend.evaluate("""async (api) => {
        const r = await fetch(api + "/token", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({visitor_id: "visitor-browser"})});
        return (await r.json()).token;
    }""", api)
    assert token.startswith("wt_")
    replay = """async ([api, token]) => {
        try {
            const r = await fetch(api + "/conversation",
                                  {headers: {Authorization: "Bearer " + token}});
            return r.status + " " + ((await r.json()).error || {}).code;
        } catch (e) { return "blocked"; }
    }"""
    assert stranger.evaluate(replay, [api, token]) == "blocked"
    assert friend.evaluate(replay, [api, token]).startswith("200")
    # The server refuses it too, whatever the browser does.
    replayed = env["client"].get(f"/api/v1/widget/embed/{env['key']['key']}/conversation",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Origin": env["other"]})
    assert replayed.status_code == 403

    # Expired (the site's clock moves 16 minutes on): refused on the allowed page too.
    at(clock.now() + timedelta(minutes=16))
    assert friend.evaluate(replay, [api, token]) == "401 invalid_token"
    at(clock.now())

    # Revoked: the token dies at once and the widget no longer renders.
    fresh = friend.evaluate("""async (api) => {
        const r = await fetch(api + "/token", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({visitor_id: "visitor-browser"})});
        return (await r.json()).token;
    }""", api)
    revoked = env["client"].post(f"/api/v1/widget/keys/{env['key']['id']}/revoke",
                                 headers=env["owner"].headers)
    assert revoked.status_code == 200
    assert friend.evaluate(replay, [api, fresh]) in ("blocked", "403 widget_key_revoked")
    _refused_page(env, env["allowed"])


def test_the_editors_preview_takes_its_colours_from_the_inputs_without_inline_styles(embedded):
    """The preview's colours are custom properties set by the page's script (a strict CSP
    allows that); the markup itself carries no style attribute."""
    from tests import browser_support as bs

    env = embedded
    page = env["browser"].new_context().new_page()
    bs.sign_in(page, env["site"], "ann@example.com")
    page.goto(f"{env['site']}/embed/{env['key']['id']}")

    def background(selector: str) -> str:
        return page.locator(selector).evaluate("e => getComputedStyle(e).backgroundColor")

    assert background("#p-header") == background("#p-send") == "rgb(15, 118, 110)"
    page.locator("#primary_color").fill("#b91c1c")
    assert background("#p-header") == background("#p-send") == "rgb(185, 28, 28)"
    page.locator("#accent_color").fill("#1d4ed8")
    assert background("#p-user") == "rgb(29, 78, 216)"
    # Only the script's custom properties, on the preview itself.
    assert page.eval_on_selector_all("[style]", "els => els.map(e => e.id)") == ["preview"]
    assert page.locator("#p-logo").is_hidden()
