"""Flows a real browser drives: an API key with one scope, a logo upload and a refused fake
image, a refused low-contrast colour, the menu button below 768 px, and a confirm dialog."""

from __future__ import annotations

import io

import pytest

from tests import browser_support as bs
from tests.dashboard_data import CUSTOMER, OWNER, seed_dashboard

pytestmark = [pytest.mark.browser, bs.needs_chromium]
browser, live_server = bs.browser, bs.live_server  # the shared fixtures


@pytest.fixture
def world(app, platform, acme, globex, make_user):
    seed_dashboard(app, platform, acme, globex, make_user)
    return acme


def _page(browser, base, email, width=1280):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    watch = bs.PageWatch()
    watch.attach(page)
    bs.sign_in(page, base, email)
    return page, watch


def test_a_customer_makes_a_key_with_one_scope_and_revokes_it_after_confirming(
        world, live_server, browser):
    base = f"http://{world.host}:{live_server}"
    page, watch = _page(browser, base, CUSTOMER)
    page.goto(f"{base}/settings/api-keys")
    page.fill("#name", "chat widget")
    # Clicking the words ticks the box; nothing else is required.
    page.get_by_text("Run agents (agents:execute)").click()
    assert page.is_checked("input[value='agents:execute']")
    assert page.eval_on_selector_all("input[name=scopes]:checked", "els => els.length") == 1
    # The date picker shows only for "On a date…".
    assert not page.locator("#expires_on").is_visible()
    page.select_option("#expires", "date")
    assert page.locator("#expires_on").is_visible()
    page.select_option("#expires", "30")
    page.click("button:has-text('Create key')")
    secret = page.get_by_test_id("new-key").locator(".secret").inner_text()
    assert secret.startswith("ak_")
    assert page.locator("[data-copy]").count() == 1
    row = page.locator("tr", has_text="chat widget")
    assert "agents:execute" in row.inner_text() and "billing" not in row.inner_text()
    # Presets tick exactly their scopes.
    page.click("button[data-preset-for=scopes]:has-text('Read only')")
    ticked = page.eval_on_selector_all("input[name=scopes]:checked", "els => els.map(e => e.value)")
    assert ticked and all(s.endswith(":read") for s in ticked)
    # Revoke asks first; Cancel keeps the key.
    row.locator("button:has-text('Revoke')").click()
    dialog = page.locator("#confirm-dialog")
    assert dialog.is_visible() and "chat widget" in dialog.inner_text()
    dialog.locator("[data-confirm-no]").click()
    assert "active" in page.locator("tr", has_text="chat widget").inner_text()
    page.locator("tr", has_text="chat widget").locator("button:has-text('Revoke')").click()
    dialog.locator("[data-confirm-yes]").click()
    page.wait_for_selector("tr:has-text('chat widget') .badge.bad")
    assert watch.errors == []


def _png_file(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_a_reseller_uploads_a_logo_and_a_fake_image_is_refused(world, live_server, browser,
                                                              tmp_path):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (120, 40), (17, 24, 39)).save(buffer, format="PNG")
    base = f"http://{world.host}:{live_server}"
    page, watch = _page(browser, base, OWNER)
    page.goto(f"{base}/settings/branding")
    page.set_input_files("#logo_file", _png_file(tmp_path, "logo.png", buffer.getvalue()))
    # The preview shows the chosen file before saving.
    assert page.locator("[data-brand-preview] img[data-p-logo]").first.get_attribute(
        "src").startswith("blob:")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Branding saved.")
    src = page.get_by_test_id("brand-header").locator("img").get_attribute("src")
    assert src.startswith("/brand/logo-")
    assert page.evaluate("src => fetch(src).then(r => r.status)", src) == 200
    fake = _png_file(tmp_path, "fake.png", b"just some text, not an image\n" * 20)
    page.set_input_files("#logo_file", fake)
    page.click("button:has-text('Save')")
    error = page.locator("#logo_file-error")
    assert "not a readable PNG, JPEG or WebP" in error.inner_text()
    assert page.locator("#logo_file").get_attribute("aria-invalid") == "true"
    # The logo from before is still the one shown.
    assert page.get_by_test_id("brand-header").locator("img").get_attribute("src") == src
    assert [e for e in watch.errors if "422" not in e] == []


def test_a_low_contrast_primary_colour_is_refused_with_a_clear_message(world, live_server,
                                                                      browser):
    base = f"http://{world.host}:{live_server}"
    page, watch = _page(browser, base, OWNER)
    page.goto(f"{base}/settings/branding")
    page.fill("#display_name", "Acme Agents Deluxe")
    page.locator("#primary_color").fill("#fef08a")
    # The live preview warns before saving.
    warning = page.locator("[data-p-contrast]")
    assert warning.is_visible() and "4.5:1" in warning.inner_text()
    page.click("button:has-text('Save')")
    message = page.locator("#primary_color-error").inner_text()
    assert "contrast" in message and "#fef08a" in message
    assert page.input_value("#display_name") == "Acme Agents Deluxe"  # kept on error
    header = page.get_by_test_id("brand-header").evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert header == "rgb(225, 29, 72)"  # acme's red, unchanged
    assert [e for e in watch.errors if "422" not in e] == []


def test_below_768_px_the_menu_folds_behind_a_button(world, live_server, browser):
    base = f"http://{world.host}:{live_server}"
    page, watch = _page(browser, base, OWNER, width=375)
    button = page.locator("[data-menu-button]")
    assert button.is_visible() and not page.locator("#sidebar").is_visible()
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    page.locator("#sidebar").get_by_role("link", name="Branding").click()
    page.wait_for_url(f"{base}/settings/branding")
    assert bs.overflow(page) <= 0
    # The skip link is the first stop and lands on the page's content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.set_viewport_size({"width": 1280, "height": 900})
    assert not button.is_visible() and page.locator("#sidebar").is_visible()
    assert watch.errors == []
