"""Helpers shared by the account and OAuth tests: CSRF tokens, the outbox, links in emails."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"


def csrf(site, path: str) -> str:
    page = site.client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True))
    assert match, f"{path} carries a CSRF token"
    return match.group(1)


def post_form(site, path: str, data: dict, token_from: str | None = None, **kwargs):
    """POST ``data`` to ``path`` with a CSRF token taken from ``token_from`` (default: path)."""
    return site.client.post(path, data={**data, "csrf_token": csrf(site, token_from or path)},
                            **kwargs)


@dataclass
class SentEmail:
    to: str
    template: str
    subject: str
    text: str

    @property
    def link(self) -> str:
        match = re.search(r"https?://\S+", self.text)
        assert match, f"no link in {self.template} email"
        return match.group(0)


def sent_emails(app, site, template: str | None = None) -> list[SentEmail]:
    from app.email.models import OutboundEmail
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(site.info):
        stmt = select(OutboundEmail).order_by(OutboundEmail.created_at)
        if template:
            stmt = stmt.where(OutboundEmail.template == template)
        return [SentEmail(e.to_address, e.template, e.subject, e.text_body)
                for e in db.session.scalars(stmt)]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def host_of(url: str) -> str:
    return urlsplit(url).netloc


def audit_actions(app, site) -> list[str]:
    from app.auth.models import AuditEvent
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(site.info):
        return [e.action for e in db.session.scalars(
            select(AuditEvent).order_by(AuditEvent.created_at))]


def user_row(app, site, email: str):
    """The user (detached, attributes loaded) of ``site`` with ``email``, or None."""
    from app.auth.service import find_by_email
    from app.extensions import db
    from tenants import activate

    with app.app_context(), activate(site.info):
        user = find_by_email(email)
        if user is not None:
            db.session.expunge(user)
        return user


def give_custom_primary_domain(app, site, hostname: str) -> str:
    """Make ``hostname`` the tenant's verified primary domain; the slug host keeps working."""
    from app.extensions import db
    from tenants.service import add_domain, get_by_slug, mark_domain_verified, set_primary_domain

    with app.app_context():
        tenant = get_by_slug(site.info.slug)
        domain = add_domain(tenant, hostname)
        mark_domain_verified(domain)
        set_primary_domain(domain)
        db.session.commit()
    return hostname
