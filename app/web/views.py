"""Dashboard pages shared across features: the home page."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

bp = Blueprint("web", __name__)


@bp.get("/")
@login_required
def home():
    return render_template("web/home.html", user=current_user)
