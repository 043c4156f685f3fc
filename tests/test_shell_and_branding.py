"""The shell (grouped navigation, served assets) and branding (uploads decoded server-side,
colours that white text can be read on, neutral DNS record names)."""

from __future__ import annotations

import io
import re

import pytest

from tests.conftest import login

PASSWORD = "correct horse battery"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def _png(width: int = 64, height: int = 32, colour=(225, 29, 72), fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format=fmt)
    return buffer.getvalue()


# -- navigation -------------------------------------------------------------------------

def test_navigation_is_grouped_and_unknown_pages_land_under_more(app):
    from app.web import nav

    assert nav.group_for("Customers", "people.customers") == "Sell"
    assert nav.group_for("Team", "people.team") == "Settings"
    assert nav.group_for("Widget keys", "widget.keys") == "Connect"
    assert nav.group_for("System", "system.index") == "Platform"
    assert nav.group_for("Something new", "x.y") == "More"
    # The four-argument call other features make still works; a group can be given.
    nav.register(app, "Customers", "agents_pages.history", ("RESELLER",))
    nav.register(app, "Widget", "agents_pages.history", ("USER",), group="Connect")
    items = [i for i in app.extensions["albedo.nav"] if i.endpoint == "agents_pages.history"]
    assert len(items) == 1 and set(items[0].roles) == {"RESELLER", "USER"}


def test_sidebar_groups_follow_the_role(app, acme, make_user):
    make_user(acme, "owner@example.com", role="RESELLER")
    make_user(acme, "alice@example.com")
    login(acme, "owner@example.com")
    html = acme.client.get("/").get_data(as_text=True)
    groups = re.findall(r'<h2 class="group"[^>]*>([^<]+)</h2>', html)
    assert groups[:4] == ["Build", "Sell", "Connect", "Settings"]
    settings = html.split(">Settings</h2>")[1].split("</ul>")[0]
    assert "Branding" in settings and "Domains" in settings and "Sign-in settings" in settings
    assert 'class="skip-link" href="#main"' in html and 'id="main"' in html
    login(acme, "alice@example.com")
    html = acme.client.get("/").get_data(as_text=True)
    assert "Branding" not in html and "Platform</h2>" not in html and "API keys" in html


def test_stylesheet_is_served_by_the_app_with_a_content_hash_and_long_cache(app, acme):
    html = acme.client.get("/login").get_data(as_text=True)
    assert "cdn" not in html.lower() and "<style" not in html and " style=" not in html
    css = re.search(r'href="(/static/app\.css\?v=([0-9a-f]{12}))"', html)
    response = acme.client.get(css.group(1))
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert response.cache_control.max_age == 31536000 and response.cache_control.immutable
    # A stale hash is still served, but not cached for long.
    assert acme.client.get("/static/app.css?v=000000000000").cache_control.max_age == 300
    assert acme.client.get("/static/../settings.py").status_code == 404
    assert acme.client.get("/static/vendor/nothing/x.js").status_code == 404
    docs = acme.client.get("/api/docs").get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js?v=" in docs and "cdn" not in docs


# -- colours ----------------------------------------------------------------------------

def test_contrast_ratios_match_wcag():
    from tenants.contrast import contrast_ratio, readable_on, white_text_problem

    assert round(contrast_ratio("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast_ratio("#fef08a", "#ffffff"), 2) < 1.3
    assert white_text_problem("#fef08a") and "4.5:1" in white_text_problem("#fef08a")
    assert white_text_problem("#e11d48") is None  # acme's red passes AA with white
    assert readable_on("#fef08a") == "#111827" and readable_on("#111827") == "#ffffff"


def test_a_low_contrast_primary_colour_is_refused_by_page_and_api(app, acme, globex,
                                                                  make_user, api_caller):
    make_user(acme, "owner@example.com", role="RESELLER")
    login(acme, "owner@example.com")
    page = acme.client.get("/settings/branding").get_data(as_text=True)
    form = {"csrf_token": _csrf(page), "display_name": "Acme AI", "primary_color": "#fef08a",
            "accent_color": "#f59e0b", "support_email": "", "logo_url": "",
            "license_key_prefix": "ACME"}
    refused = acme.client.post("/settings/branding", data=form)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    error = re.search(r'id="primary_color-error">([^<]+)<', html).group(1)
    assert "contrast" in error and "4.5:1" in error and "primary_color" not in error
    assert 'value="Acme AI"' in html  # what was typed is kept
    assert 'aria-invalid="true"' in html
    reseller = api_caller(acme, role="RESELLER")
    api = acme.client.patch("/api/v1/tenant", headers=reseller.headers,
                            json={"primary_color": "#fef08a"})
    assert api.status_code == 422
    assert "primary_color" in api.get_json()["error"]["details"]["fields"]
    # Nothing changed, here or at the look-alike tenant.
    for site in (acme, globex):
        theme = re.search(r'href="(/theme\.css\?v=[0-9a-f]+)"',
                          site.client.get("/login").get_data(as_text=True)).group(1)
        assert "#fef08a" not in site.client.get(theme).get_data(as_text=True)


# -- images -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,content_type", [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                              ("WEBP", "image/webp")])
def test_images_are_accepted_by_what_they_decode_as(fmt, content_type):
    from tenants.brand_assets import check_image

    assert check_image("logo", _png(fmt=fmt)).content_type == content_type


def test_images_are_refused_when_forged_too_big_or_the_wrong_shape():
    from tenants.brand_assets import ImageRejected, check_image

    with pytest.raises(ImageRejected, match="not a readable"):
        check_image("logo", b"This is text pretending to be a PNG.\n" * 10)
    with pytest.raises(ImageRejected, match="not a readable"):
        check_image("logo", _png()[:60])  # a truncated PNG: the header alone is not enough
    with pytest.raises(ImageRejected, match="PNG, JPEG or WebP"):
        check_image("logo", _png(fmt="GIF"))
    with pytest.raises(ImageRejected, match="pixels"):
        check_image("favicon", _png(1024, 1024))
    with pytest.raises(ImageRejected, match="pixels"):
        check_image("logo", _png(8, 8))
    with pytest.raises(ImageRejected, match="KB"):
        check_image("favicon", b"\x89PNG" + b"0" * 200 * 1024)


def _upload(site, logo: bytes, name: str = "logo.png", field: str = "logo_file"):
    page = site.client.get("/settings/branding").get_data(as_text=True)
    data = {"csrf_token": _csrf(page), "display_name": "Acme Agents",
            "primary_color": "#e11d48", "accent_color": "#f59e0b",
            "support_email": "support@acme.example", "logo_url": "",
            "license_key_prefix": "ACME", field: (io.BytesIO(logo), name)}
    return site.client.post("/settings/branding", data=data,
                            content_type="multipart/form-data")


def test_logo_upload_is_served_by_hash_with_caching_and_only_on_its_tenant(app, acme, globex,
                                                                          make_user):
    make_user(acme, "owner@example.com", role="RESELLER")
    make_user(globex, "owner@example.com", role="RESELLER")
    login(acme, "owner@example.com")
    logo = _png()
    assert _upload(acme, logo).status_code == 302
    html = acme.client.get("/login").get_data(as_text=True)
    url = re.search(r'<img src="(/brand/logo-[0-9a-f]{16}\.png)"', html).group(1)
    served = acme.client.get(url)
    assert served.status_code == 200 and served.data == logo
    assert served.mimetype == "image/png" and served.cache_control.max_age == 31536000
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    # Globex does not serve acme's logo, even by its exact URL.
    assert globex.client.get(url).status_code == 404
    # A favicon too; the browser's own /favicon.ico follows it.
    assert _upload(acme, _png(32, 32), "icon.webp", "favicon_file").status_code == 302
    favicon = re.search(r'<link rel="icon" href="(/brand/favicon-[0-9a-f]{16}\.png)"',
                        acme.client.get("/login").get_data(as_text=True)).group(1)
    assert acme.client.get("/favicon.ico").headers["Location"].endswith(favicon)
    assert globex.client.get("/favicon.ico").status_code == 204
    # A new logo is a new URL; the old one is gone.
    assert _upload(acme, _png(colour=(0, 0, 0))).status_code == 302
    assert acme.client.get(url).status_code == 404


def test_a_fake_image_is_refused_next_to_its_field(app, acme, make_user):
    make_user(acme, "owner@example.com", role="RESELLER")
    login(acme, "owner@example.com")
    refused = _upload(acme, b"<?php echo 'not an image'; ?>" * 5, "logo.png")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert re.search(r'id="logo_file-error">[^<]*not a readable PNG, JPEG or WebP', html)
    assert "/brand/logo-" not in acme.client.get("/login").get_data(as_text=True)


# -- domains ----------------------------------------------------------------------------

def test_domain_verification_record_is_neutral_and_the_old_one_still_counts(app, acme):
    from app.extensions import db
    from tenants import verification
    from tenants.context import activate
    from tenants.models import Domain, Tenant
    from tenants.platform import attach_domain

    with app.app_context(), activate(acme.info):
        tenant = db.session.get(Tenant, acme.info.id)
        domain: Domain = attach_domain(tenant, "agents.acme.test", False, False, actor=None)
        token = domain.verification_token
        assert verification.record_name(domain.hostname) == "_domain-verification.agents.acme.test"
        neutral = {"_domain-verification.agents.acme.test": [f'"{token}"']}
        legacy = {"_albedo.agents.acme.test": [token]}
        assert verification.proves_control(domain, lambda n: neutral.get(n, []))
        assert verification.proves_control(domain, lambda n: legacy.get(n, []))
        assert not verification.proves_control(domain, lambda n: {n: ["other"]}[n])

        def broken(_name):
            raise OSError("timeout")

        assert not verification.proves_control(domain, broken)
