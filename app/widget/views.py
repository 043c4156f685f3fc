"""Widget pages: placeholder until the pages land."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("widget_pages", __name__, url_prefix="/widget")


@bp.get("")
def index():
    return "widget"
