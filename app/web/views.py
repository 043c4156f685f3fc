"""Dashboard pages shared across features: the home page, one per role."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from app.web import kpis
from tenants.context import current

bp = Blueprint("web", __name__)


@bp.get("/")
@login_required
def home():
    """The operator's platform totals, the reseller's business and setup, or the customer's
    usage: the numbers come from app.web.kpis."""
    if current_user.role == "ADMIN":
        data = kpis.platform_home() if current().is_platform else {}
    elif current_user.role == "RESELLER":
        data = kpis.reseller_home(current().id)
    else:
        data = kpis.customer_home(current_user.id)
    return render_template("web/home.html", user=current_user, **data)
