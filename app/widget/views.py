"""Widget pages: create and revoke keys, edit origins and appearance with a live preview,
copy the snippet. Thin: app/widget/keys.py decides, these pages shape."""

from __future__ import annotations

import uuid

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.agents.service import Agent, Caller, visible_agents
from app.auth.models import User
from app.auth.permissions import require_role
from app.errors import ApiError
from app.extensions import db
from app.widget import keys
from app.widget.api import shaped
from app.widget.models import WidgetKey

bp = Blueprint("widget_pages", __name__, url_prefix="/embed")
APPEARANCE_FIELDS = ("name", "primary_color", "accent_color", "logo_url", "greeting",
                     "placeholder")


def _caller() -> Caller:
    return Caller(current_user.id, current_user.role)


def _origins(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def _cap(text: str | None) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > 2**31 - 1:
        raise ApiError(422, "validation_failed", "The monthly cap is a whole number.",
                       {"fields": {"monthly_cap": "a whole number"}})
    return int(text)


def _choices(caller: Caller) -> tuple[list[Agent], list[User]]:
    agents = list(db.session.scalars(visible_agents(caller).where(
        Agent.published_version.is_not(None), Agent.status == "active").order_by(Agent.name)))
    owners: list[User] = []
    if caller.sees_whole_tenant:
        owners = list(db.session.scalars(select(User).where(
            User.role == "USER", User.is_active.is_(True)).order_by(User.email)))
    return agents, owners


@bp.route("", methods=["GET", "POST"])
@require_role("RESELLER", "USER")
def index():
    caller = _caller()
    status, problem = 200, None
    if request.method == "POST":
        try:
            owner = request.form.get("owner_id") or None
            key = keys.create_key(
                caller, name=request.form.get("name", ""),
                agent_id=uuid.UUID(request.form.get("agent_id") or str(uuid.UUID(int=0))),
                allowed_origins=_origins(request.form.get("allowed_origins", "")),
                monthly_cap=_cap(request.form.get("monthly_cap")),
                requires_license=bool(request.form.get("requires_license")),
                owner_id=uuid.UUID(owner) if owner else None)
        except (ApiError, ValueError) as exc:
            db.session.rollback()
            problem = _sentence(exc)
            status = 422
        else:
            db.session.commit()
            flash(f"Widget key {key.name} created: paste its snippet into your pages.")
            return redirect(url_for(".edit", key_id=key.id))
    rows = list(db.session.scalars(keys.visible_keys(caller).order_by(
        WidgetKey.created_at.desc())))
    agents, owners = _choices(caller)
    names = {a.id: a.name for a in db.session.scalars(visible_agents(caller))}
    return render_template("widget/index.html", keys=rows, agents=agents, owners=owners,
                           agent_names=names, problem=problem, form=request.form), status


def _sentence(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        fields = exc.details.get("fields") if exc.details else None
        return exc.message + (" " + "; ".join(f"{k}: {v}" for k, v in fields.items())
                              if fields else "")
    return "Choose an agent."


@bp.route("/<uuid:key_id>", methods=["GET", "POST"])
@require_role("RESELLER", "USER")
def edit(key_id: uuid.UUID):
    key = keys.get_key(_caller(), key_id)
    status, problem = 200, None
    if request.method == "POST":
        try:
            keys.update_key(key, {
                "name": request.form.get("name", key.name),
                "allowed_origins": _origins(request.form.get("allowed_origins", "")),
                # The title field is "name_shown": "name" is the key's own name.
                "appearance": {f: request.form.get("name_shown" if f == "name" else f, "")
                               for f in APPEARANCE_FIELDS},
                "monthly_cap": _cap(request.form.get("monthly_cap"))})
        except ApiError as exc:
            db.session.rollback()
            key = keys.get_key(_caller(), key_id)
            problem, status = _sentence(exc), 422
        else:
            db.session.commit()
            flash("Saved. Pages pick up the change at once.")
            return redirect(url_for(".edit", key_id=key.id))
    from app.widget.service import public_config

    return render_template("widget/edit.html", key=key, view=shaped(key),
                           look=public_config(key), problem=problem), status


@bp.post("/<uuid:key_id>/revoke")
@require_role("RESELLER", "USER")
def revoke(key_id: uuid.UUID):
    key = keys.revoke_key(keys.get_key(_caller(), key_id))
    db.session.commit()
    flash(f"Revoked {key.name}: pages using it stop chatting now.")
    return redirect(url_for(".index"))
