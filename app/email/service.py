"""Sending email: render in the tenant's branding, store, deliver from the `emails` queue."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template

from app.email.models import OutboundEmail
from app.extensions import db
from jobs.enqueue import enqueue_after_commit
from tenants.context import TenantInfo, current
from tenants.urls import base_url


def render(template: str, context: dict[str, Any], tenant: TenantInfo) -> tuple[str, str, str]:
    values = {**context, "tenant": tenant, "site_url": base_url(tenant)}
    subject = render_template(f"emails/{template}.subject.txt", **values).strip()
    html = render_template(f"emails/{template}.html", **values)
    text = render_template(f"emails/{template}.txt", **values)
    return subject, html, text


def send_email(to: str, template: str, context: dict[str, Any] | None = None) -> OutboundEmail:
    """Queue an email to ``to`` for the current tenant; delivery follows the commit."""
    tenant = current()
    settings = current_app.extensions["albedo.settings"]
    subject, html, text = render(template, context or {}, tenant)
    email = OutboundEmail(
        template=template, to_address=to, subject=subject[:255], html_body=html, text_body=text,
        from_name=tenant.display_name, from_address=settings.email_from_address,
        reply_to=tenant.support_email, status="queued")
    db.session.add(email)
    db.session.flush()
    enqueue_after_commit(db.session, "emails.deliver", str(email.id),
                         job_id=f"email-{email.id}-0")  # tasks.job_id_for(email.id, 0)
    return email
