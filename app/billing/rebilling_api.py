"""The rebilling API: /api/v1/billing/prices, /ledger, /spending, /credits, /margins."""

from __future__ import annotations

from flask import Response, g, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.pagination import page_of, paginate
from app.auth.guard import require
from app.billing import credits, ledger, price_book, reports
from app.billing.rebilling_models import LedgerEntry
from app.billing.rebilling_schemas import (
    CreditGrantSchema,
    LedgerArgsSchema,
    LedgerEntrySchema,
    MarginArgsSchema,
    MarginsSchema,
    PlanUsageSchema,
    PriceBookSchema,
    PriceBookUpdateSchema,
    PriceSchema,
    PriceSetSchema,
    PricesSchema,
    ReversalSchema,
    SpendingSchema,
    SpendingUpdateSchema,
    TopUpSchema,
)
from app.billing.schemas import RedirectSchema
from app.errors import ApiError
from app.extensions import db
from tenants.context import activate, current

blp = Blueprint("rebilling", __name__, description="Price books, the usage ledger, spending "
                                                   "limits and prepaid credits")
SELLERS = ("RESELLER", "ADMIN")


def _viewer() -> reports.Viewer:
    principal = g.principal
    return reports.Viewer(principal.user_id, principal.role in SELLERS)


@blp.route("/prices")
class Prices(MethodView):
    @blp.response(200, PricesSchema)
    @require("billing:read", roles=SELLERS)
    def get(self):
        """This tenant's price book: currency and prices (a reseller's retail prices to its
        customers; on the platform domain, the wholesale prices to resellers).

        The most specific price applies: the agent's, then the model's, then the default;
        with none, the provider's cost is passed through at cost.
        """
        return {"book": price_book.describe_book(), "items": price_book.list_prices()}

    @blp.arguments(PriceSetSchema)
    @blp.response(200, PriceSchema)
    @require("billing:write", roles=SELLERS)
    def post(self, body):
        """Set (create or replace) the price for an agent, a model, or the default.

        `tokens`: input and output prices per million tokens; `execution`: a price per
        execution; `markup`: basis points of the provider's cost. 422 `invalid_price`.
        """
        price = price_book.set_price(**body)
        db.session.commit()
        return price


@blp.route("/prices/book")
class Book(MethodView):
    @blp.arguments(PriceBookUpdateSchema)
    @blp.response(200, PriceBookSchema)
    @require("billing:write", roles=SELLERS)
    def put(self, body):
        """Change the book's currency (409 `currency_locked` once usage was charged), its
        dollar rate for markups, or its Stripe meter."""
        price_book.update_book(**body)
        db.session.commit()
        return price_book.describe_book()


@blp.route("/prices/<uuid:price_id>")
class OnePrice(MethodView):
    @blp.response(204)
    @require("billing:write", roles=SELLERS)
    def delete(self, price_id):
        """Remove a price (the next most specific one applies from now on)."""
        price_book.delete_price(price_id)
        db.session.commit()


def _filters(args: dict) -> dict:
    return {k: args.get(k) for k in ("customer_id", "agent_id", "period", "kind", "since",
                                     "until")}


@blp.route("/ledger")
class Ledger(MethodView):
    @blp.arguments(LedgerArgsSchema, location="query")
    @blp.response(200, page_of(LedgerEntrySchema))
    @require("billing:read")
    def get(self, args):
        """Usage ledger entries, newest first (cursor pages; filters: customer_id, agent_id,
        period `YYYY-MM`, kind, since, until).

        A customer sees its own entries in its seller's prices (`amount_micro` and what is
        invoiced, `billable_micro`), never the model, the provider's cost or the wholesale
        price; a reseller sees every entry with those and its margin.
        """
        viewer = _viewer()
        page = paginate(reports.entries(viewer, **_filters(args)), cursor=args["cursor"],
                        limit=args["limit"], order_by=(LedgerEntry.created_at, LedgerEntry.id))
        view = reports.view_of(viewer)
        return {"items": [view(entry) for entry in page.items],
                "next_cursor": page.next_cursor}


@blp.route("/ledger.csv")
class LedgerCsv(MethodView):
    @blp.arguments(LedgerArgsSchema, location="query")
    @blp.doc(responses={"200": {"description": "The entries as CSV, a header line first.",
                                "content": {"text/csv": {"schema": {"type": "string"}}}}})
    @require("billing:read")
    def get(self, args):
        """The ledger as CSV (same filters and the same visibility as `/ledger`)."""
        viewer = _viewer()
        stmt = reports.entries(viewer, **_filters(args))
        tenant = current()

        def rows():
            # The stream outlives the handler: it carries its tenant with it.
            with activate(tenant):
                yield from reports.csv_rows(viewer, stmt)

        return Response(stream_with_context(rows()),
                        mimetype="text/csv", headers={
                            "Content-Disposition": 'attachment; filename="usage-ledger.csv"'})


@blp.route("/ledger/<uuid:entry_id>/reversal")
class Reversal(MethodView):
    @blp.arguments(ReversalSchema)
    @blp.response(201, LedgerEntrySchema)
    @require("billing:write", roles=SELLERS)
    def post(self, body, entry_id):
        """Correct a charge: a new entry negating it (its spend and credits too). The
        original is never changed. 409 `already_reversed`."""
        entry = ledger.reverse(entry_id, body["reason"])
        db.session.commit()
        return reports.reseller_view(entry)


@blp.route("/margins")
class Margins(MethodView):
    @blp.arguments(MarginArgsSchema, location="query")
    @blp.response(200, MarginsSchema)
    @require("billing:read", roles=SELLERS)
    def get(self, args):
        """Revenue, provider cost, wholesale cost and margin per customer, agent or day."""
        return {"group_by": args["group_by"],
                "items": reports.margins(args["group_by"], args["period"])}


@blp.route("/spending")
class MySpending(MethodView):
    @blp.response(200, SpendingSchema)
    @require("billing:read", roles=("USER",))
    def get(self):
        """The caller's month in its seller's prices: spend, limit, credits."""
        return credits.describe(g.principal.user_id)


@blp.route("/customers/<uuid:user_id>/spending")
class CustomerSpending(MethodView):
    @blp.response(200, SpendingSchema)
    @require("billing:read", roles=SELLERS)
    def get(self, user_id):
        """A customer's spend, limit and credits."""
        credits._customer(user_id)
        return credits.describe(user_id)

    @blp.arguments(SpendingUpdateSchema)
    @blp.response(200, SpendingSchema)
    @require("billing:write", roles=SELLERS)
    def patch(self, body, user_id):
        """Set a customer's monthly spending limit (`soft`: announce at 80 % and 100 %;
        `hard`: refuse new executions with 402 `spending_limit_reached`), credits and
        automatic top-up."""
        answer = credits.update_settings(user_id, body)
        db.session.commit()
        return answer


@blp.route("/customers/<uuid:user_id>/credits")
class GrantCredits(MethodView):
    @blp.arguments(CreditGrantSchema)
    @blp.response(201, SpendingSchema)
    @require("billing:write", roles=SELLERS)
    def post(self, body, user_id):
        """Add prepaid credits to a customer by hand."""
        answer = credits.grant(user_id, body["amount"])
        db.session.commit()
        return answer


@blp.route("/credits/checkout")
class TopUp(MethodView):
    @blp.arguments(TopUpSchema)
    @blp.response(201, RedirectSchema)
    @require("billing:write", roles=("USER",))
    def post(self, body):
        """Buy prepaid credits through Stripe Checkout; credited when Stripe confirms."""
        from app.auth.models import User

        user = db.session.get(User, g.principal.user_id)
        if user is None:
            raise ApiError(404, "customer_not_found", "No such customer.")
        return credits.start_top_up(user.id, body["amount"], user.email)


@blp.route("/plans/<uuid:plan_id>/usage")
class PlanUsage(MethodView):
    @blp.arguments(PlanUsageSchema)
    @blp.response(200, PlanUsageSchema)
    @require("billing:write", roles=SELLERS)
    def put(self, body, plan_id):
        """Set the usage a plan includes each month and the price of usage beyond it."""
        row = price_book.set_plan_usage(plan_id, body["included_minor"], body["overage_bp"])
        db.session.commit()
        return row
