"""Usage pages at /billing/usage: what each role sees of the ledger, in plain markup.

Customer: this month's usage and spend in its seller's prices and currency (never the
model or the provider's cost), its limit, credits and invoices. Reseller: revenue, provider
cost, wholesale cost and margin per customer, agent and day (a table and an SVG chart), and
its price book. Platform operator: wholesale revenue per reseller.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app import clock
from app.billing import (
    charts,
    credits,
    overview,
    price_book,
    pricing,
    reports,
    service,
    spending,
)
from app.errors import ApiError
from app.extensions import db
from tenants.context import current

bp = Blueprint("rebilling_pages", __name__, url_prefix="/billing/usage")


@bp.app_template_filter("micro_money")
def _micro_money(amount_micro: int | None, currency: str) -> str:
    from app.billing.money import format_money

    if amount_micro is None:
        return "n/a"
    return format_money(pricing.to_minor(amount_micro), currency)


@bp.route("")
@login_required
def index():
    period = spending.period_of(clock.now())
    if current_user.role == "USER":
        viewer = reports.Viewer(current_user.id, False)
        entries = list(db.session.scalars(
            reports.entries(viewer, period=period)
            .order_by(reports.LedgerEntry.created_at.desc()).limit(50)))
        return render_template(
            "billing/usage_customer.html", summary=credits.describe(current_user.id),
            entries=[reports.customer_view(e) for e in entries],
            invoices=overview.invoices(service.subject_of("USER", current_user.id)),
            top_up=request.args.get("top_up"))
    if current_user.role == "ADMIN":
        if not current().is_platform:
            abort(403)
        return render_template("billing/usage_platform.html",
                               rows=reports.wholesale_by_reseller(), book=_book_context())
    group_by = request.args.get("group_by", "customer")
    if group_by not in reports.GROUPS:
        group_by = "customer"
    rows = reports.margins(group_by)
    return render_template("billing/usage_reseller.html", rows=rows, group_by=group_by,
                           chart=charts.bars(rows) if group_by == "day" else None,
                           book=_book_context())


def _book_context() -> dict:
    return {"book": price_book.describe_book(), "prices": price_book.list_prices()}


def _amount(name: str) -> int | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(422, "invalid_price", f"{name} is a whole number.") from None


@bp.route("/prices", methods=["POST"])
@login_required
def set_price():
    if current_user.role not in ("RESELLER", "ADMIN"):
        abort(403)
    try:
        if request.form.get("currency"):
            price_book.update_book(currency=request.form["currency"],
                                   usd_rate_ppm=_amount("usd_rate_ppm"))
        else:
            selector = (request.form.get("model") or "").strip() or None
            price_book.set_price(
                kind=request.form.get("kind", ""), model=selector,
                **{name: _amount(name) for name in price_book.ALL_FIELDS})
        db.session.commit()
        flash("Price book saved.")
    except ApiError as error:
        db.session.rollback()
        details = error.details.get("fields") if error.details else None
        flash(error.message + (f" ({details})" if details else ""))
    return redirect(url_for("rebilling_pages.index"))
