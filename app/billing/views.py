"""Billing pages: one /billing page whose content follows the role.

Platform operator: plans, resellers' subscriptions, revenue. Reseller: its own subscription
to the platform, the plans it sells, its Connect status, its customers' subscriptions.
Customer: choose a plan, manage it, invoices. Buttons post forms (CSRF) and redirect to
Stripe's hosted pages. The platform and each reseller add the plans they sell with a form
on the same page.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.billing import checkout, connect, overview, service
from app.billing.config import stripe_config
from app.billing.forms import PlanForm
from app.billing.money import format_money
from app.billing.plans import create_plan, list_plans
from app.errors import ApiError
from app.extensions import db
from tenants.context import current

bp = Blueprint("billing_pages", __name__, url_prefix="/billing")


@bp.app_template_filter("money")
def _money(amount_minor: int, currency: str) -> str:
    return format_money(amount_minor, currency)


def _subject():
    try:
        return service.subject_of(current_user.role, current_user.id)
    except ApiError:
        return None


def _sells_plans() -> bool:
    """The platform's operators sell to resellers; a reseller's staff to its customers."""
    role = current_user.role
    return (role == "ADMIN" and current().is_platform) or (
        role == "RESELLER" and not current().is_platform)


def _page(plan_form: PlanForm | None = None):
    configured = stripe_config() is not None
    context = {"configured": configured, "checkout_state": request.args.get("checkout"),
               "plan_form": plan_form or (PlanForm() if _sells_plans() else None)}
    if current_user.role == "ADMIN":
        if not current().is_platform:
            abort(403)
        return render_template("billing/platform.html", **context,
                               **overview.platform_overview())
    subject = _subject()
    context.update(state=service.billing_state(subject), invoices=overview.invoices(subject))
    if current_user.role == "RESELLER":
        return render_template("billing/reseller.html", **context,
                               buyable=overview.platform_plans(), own_plans=list_plans(),
                               connect=connect.connect_account(),
                               customers=overview.customer_subscriptions())
    return render_template("billing/customer.html", **context, buyable=list_plans())


@bp.route("")
@login_required
def index():
    return _page()


@bp.post("/plans")
@login_required
def add_plan():
    """Add a plan to what this tenant sells; a refused form comes back with its errors."""
    if not _sells_plans():
        abort(403)
    form = PlanForm()
    if form.validate_on_submit():
        try:
            plan = create_plan(**form.plan_args())
        except ApiError as exc:
            db.session.rollback()
            form.show(exc)
        else:
            db.session.commit()
            flash(f"Plan {plan.name} added.")
            return redirect(url_for("billing_pages.index"))
    return _page(form), 422


def _back_with(error: ApiError):
    flash(error.message, "error")
    return redirect(url_for("billing_pages.index"))


@bp.route("/checkout", methods=["POST"])
@login_required
def start_checkout():
    try:
        plan_id = uuid.UUID(request.form.get("plan_id", ""))
    except ValueError:
        abort(400)
    try:
        started = checkout.start_checkout(plan_id, _subject(), current_user.email)
    except ApiError as exc:
        return _back_with(exc)
    return redirect(started.url, code=303)


@bp.route("/portal", methods=["POST"])
@login_required
def portal():
    try:
        return redirect(checkout.start_portal(_subject()), code=303)
    except ApiError as exc:
        return _back_with(exc)


@bp.route("/connect", methods=["POST"])
@bp.route("/connect/refresh")
@login_required
def start_connect():
    if current_user.role != "RESELLER":
        abort(403)
    try:
        url = connect.start_onboarding()
    except ApiError as exc:
        return _back_with(exc)
    db.session.commit()
    return redirect(url, code=303)


@bp.route("/connect/return")
@login_required
def connect_return():
    if current_user.role != "RESELLER":
        abort(403)
    try:
        connect.refresh_account()
        db.session.commit()
    except ApiError as exc:
        return _back_with(exc)
    return redirect(url_for("billing_pages.index"))
