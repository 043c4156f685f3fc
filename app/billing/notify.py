"""Payment emails, in the branding of whoever sold the plan.

A customer's invoice comes from its reseller; a reseller's own invoice comes from the
platform, so that email is sent as (and stored in) the platform tenant.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.auth.models import User
from app.billing.models import Invoice
from app.billing.money import format_money
from app.billing.tenancy import acting_for
from app.email.service import send_email
from app.extensions import db
from tenants.context import current
from tenants.models import Tenant
from tenants.service import info_for

TEMPLATES = {
    "invoice.paid": "billing_payment_succeeded",
    "invoice.payment_failed": "billing_payment_failed",
    "invoice.payment_action_required": "billing_payment_action_required",
}


def _recipient(invoice: Invoice, user_id: uuid.UUID | None) -> str | None:
    if invoice.customer_email:
        return invoice.customer_email
    if user_id is not None:
        user = db.session.get(User, user_id)
        return user.email if user is not None else None
    return current().support_email


def invoice_event(event_type: str, invoice: Invoice, user_id: uuid.UUID | None) -> None:
    """Queue the email an invoice event calls for (inside the event's transaction)."""
    template = TEMPLATES.get(event_type)
    if template is None:
        return
    to = _recipient(invoice, user_id)
    if not to:
        return
    context = {
        "amount": format_money(invoice.amount_paid or invoice.amount_due, invoice.currency),
        "number": invoice.number or invoice.stripe_invoice_id,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "invoice_pdf": invoice.invoice_pdf,
    }
    tenant = current()
    if user_id is None and not tenant.is_platform:
        platform = db.session.scalars(select(Tenant).where(Tenant.kind == "platform")).first()
        if platform is not None:
            with acting_for(info_for(platform)):
                send_email(to, template, context)
            return
    send_email(to, template, context)
