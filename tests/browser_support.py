"""Browser tests' shared pieces: Debian's chromium through Playwright, a live server, and a
sweep over every page the navigation offers a role.

The sweep reads the sidebar, so a page a feature registers with ``app.web.nav.register`` is
covered without touching the tests. For each page and width it checks: no horizontal
overflow (the page is no wider than the window), no console errors or uncaught exceptions,
and no serious or critical axe-core violations. axe-core comes from the pinned
``axe-playwright-python`` package (its bundled ``axe.min.js``), injected from disk: no CDN.

Use: ``from tests.browser_support import browser, live_server, sweep`` (fixtures) and
``problems = sweep(browser, base_url, email, password)``; assert ``problems == []``.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags the sandboxed CI machine needs: no sandbox as root, no background network calls.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium installed (apt-get install chromium); CI installs it")
WIDTHS = (1280, 375)
SERIOUS = ("serious", "critical")
PASSWORD = "correct horse battery"


def axe_script() -> Path:
    """axe.min.js as shipped by the pinned axe-playwright-python package."""
    import axe_playwright_python

    return Path(axe_playwright_python.__file__).with_name("axe.min.js")


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


@dataclass
class PageWatch:
    """Console errors and uncaught exceptions a page produced."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def sign_in(page, base_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def nav_urls(page) -> list[str]:
    """Every page the sidebar links to (and Home), in order, each once."""
    hrefs = page.eval_on_selector_all("#sidebar a[href]", "els => els.map(e => e.href)")
    return list(dict.fromkeys(hrefs))


def linked_pages(page, base_url: str) -> list[str]:
    """Same-site pages the current page links to: no query strings (filters of a page
    already seen), no downloads, no sign-out."""
    hrefs = page.eval_on_selector_all("main a[href]", "els => els.map(e => e.href)")
    keep = []
    for href in hrefs:
        path = href.split("#")[0]
        if (path.startswith(base_url) and "?" not in path and not path.endswith(
                (".csv", ".json", ".png", ".jpg", ".webp")) and "logout" not in path):
            keep.append(path)
    return keep


def overflow(page) -> int:
    """How many CSS pixels the page is wider than the window (0 when it fits)."""
    return page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth")


def axe_violations(page, impacts=SERIOUS) -> list[str]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_script()))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    found = []
    for v in result["violations"]:
        if v.get("impact") in impacts:
            targets = [" ".join(n["target"]) if isinstance(n["target"], list) else n["target"]
                       for n in v["nodes"][:3]]
            found.append(f"{v['id']} ({v['impact']}): {v['help']} at {targets}")
    return found


def check_page(page, url: str, watch: PageWatch) -> list[str]:
    """What is wrong with ``url`` at the page's current viewport, as sentences."""
    watch.errors.clear()
    response = page.goto(url)
    page.wait_for_load_state("load")
    width = page.viewport_size["width"]
    problems = []
    if response is None or response.status >= 400:
        problems.append(f"{url} @{width}: HTTP {response.status if response else 'none'}")
    extra = overflow(page)
    if extra > 0:
        problems.append(f"{url} @{width}: {extra}px wider than the window")
    problems += [f"{url} @{width}: console: {e}" for e in watch.errors]
    problems += [f"{url} @{width}: axe: {v}" for v in axe_violations(page)]
    return problems


def sweep(browser, base_url: str, email: str, password: str = PASSWORD,
          widths=WIDTHS, extra_urls=(), follow_links: bool = True,
          limit: int = 60, checked: list[str] | None = None) -> list[str]:
    """Sign in as ``email`` and check every page in its navigation at every width; with
    ``follow_links``, also the pages those pages link to (one level: detail pages, tabs)."""
    context = browser.new_context(viewport={"width": widths[0], "height": 900})
    page = context.new_page()
    watch = PageWatch()
    watch.attach(page)
    sign_in(page, base_url, email, password)
    urls = nav_urls(page) + [f"{base_url}{u}" if u.startswith("/") else u for u in extra_urls]
    assert len(urls) > 1, "the navigation offers pages"
    followed_from = len(urls)  # links are followed from these pages only: one level deep
    problems: list[str] = []
    page.set_viewport_size({"width": widths[0], "height": 900})
    i = 0
    while i < min(len(urls), limit):
        problems += check_page(page, urls[i], watch)
        if follow_links and i < followed_from:
            urls += [u for u in linked_pages(page, base_url) if u not in urls]
        i += 1
    for width in widths[1:]:
        page.set_viewport_size({"width": width, "height": 900})
        for url in urls[:limit]:
            problems += check_page(page, url, watch)
    if checked is not None:
        checked += [u.removeprefix(base_url) for u in urls[:limit]]
    context.close()
    return problems
