"""The billing feature's reads in the read lane (app/api/lane): the invoices page, from the
same statement and schema as the route in app/billing/api.py."""

from __future__ import annotations

from app import clock
from app.api.lane.remembered import remembered_route
from app.api.lane.routes import page_route
from app.auth.models import ROLES
from app.billing import service
from app.billing.models import Invoice
from app.billing.schemas import InvoiceSchema

page_route("/api/v1/billing/invoices", scopes=("billing:read",), roles=("RESELLER", "USER"),
           schema=InvoiceSchema,
           statement=lambda principal: service.invoices_stmt(principal.role, principal.user_id),
           order_by=(Invoice.created_at, Invoice.id))

# The reads the route answers and the lane remembers (app/api/lane/remembered.py). Spending
# is the current UTC month's: it moves when the month does. A subscription's limits come from
# the platform's plans, read across tenants. The ledger's CSV is a streamed download.
_BOOK = ("billing_price_books", "billing_prices")
_SPENDING = (*_BOOK, "billing_customer_accounts", "billing_usage_ledger")
remembered_route("/api/v1/billing/connect", tables=("billing_connect_accounts",))
remembered_route("/api/v1/billing/plans", tables=("billing_plans",))
remembered_route("/api/v1/billing/prices", tables=_BOOK)
remembered_route("/api/v1/billing/ledger", tables=("billing_usage_ledger",))
remembered_route("/api/v1/billing/margins", tables=("billing_usage_ledger",))
remembered_route("/api/v1/billing/spending", tables=_SPENDING, moves_at=clock.next_month)
remembered_route("/api/v1/billing/customers/<uuid:user_id>/spending",
                 tables=(*_SPENDING, "users"), moves_at=clock.next_month)
remembered_route("/api/v1/billing/subscription",
                 tables=("billing_subscriptions", "billing_plans", "tenants"),
                 across_tenants=ROLES)
