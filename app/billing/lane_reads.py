"""The billing feature's reads in the read lane (app/api/lane): the invoices page, from the
same statement and schema as the route in app/billing/api.py."""

from __future__ import annotations

from app.api.lane.routes import page_route
from app.billing import service
from app.billing.models import Invoice
from app.billing.schemas import InvoiceSchema

page_route("/api/v1/billing/invoices", scopes=("billing:read",), roles=("RESELLER", "USER"),
           schema=InvoiceSchema,
           statement=lambda principal: service.invoices_stmt(principal.role, principal.user_id),
           order_by=(Invoice.created_at, Invoice.id))
