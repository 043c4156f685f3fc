"""Dashboard pages: agents, the editor (versions, publish, roll back), the streaming sandbox,
execution history and usage. Customers see their own; a reseller sees its templates and
every customer's usage. Thin: the services decide, these pages shape."""

from __future__ import annotations

import json
import uuid

from flask import (
    Blueprint,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from app.agents import executions, provider_settings, service, streaming, usage
from app.agents.models import EXECUTION_STATUSES, Agent, AgentVersion, Execution
from app.agents.quotas import usage_of
from app.agents.service import Caller
from app.auth.permissions import require_role
from app.errors import ApiError
from app.extensions import db

bp = Blueprint("agents_pages", __name__, url_prefix="/agents")
DEFAULT_MODEL = "gpt-4o-mini"


def _caller() -> Caller:
    return Caller(current_user.id, current_user.role)


def _version_from_form() -> dict:
    try:
        variables = json.loads(request.form.get("variables") or "[]")
        tools = json.loads(request.form.get("tools") or "[]")
        temperature = float(request.form.get("temperature") or 0.7)
        max_tokens = int(request.form.get("max_output_tokens") or 1024)
    except ValueError:
        raise ApiError(422, "invalid_version", "Variables and tools are JSON lists; "
                                               "temperature and max tokens are numbers.") from None
    if not isinstance(variables, list) or not isinstance(tools, list):
        raise ApiError(422, "invalid_version", "Variables and tools are JSON lists.")
    return {"model": request.form.get("model") or DEFAULT_MODEL,
            "system_prompt": request.form.get("system_prompt", ""), "variables": variables,
            "temperature": temperature, "max_output_tokens": max_tokens, "tools": tools}


@bp.route("", methods=["GET", "POST"])
@login_required
def index():
    caller = _caller()
    if request.method == "POST":
        try:
            agent = service.create_agent(caller, name=request.form.get("name", ""),
                                         slug=request.form.get("slug") or None,
                                         description=request.form.get("description", ""),
                                         version=_version_from_form())
            db.session.commit()
        except ApiError as exc:
            db.session.rollback()
            flash(exc.message)
            return redirect(url_for(".index"))
        return redirect(url_for(".editor", agent_id=agent.id))
    agents = db.session.scalars(service.visible_agents(caller)
                                .order_by(Agent.is_template.desc(), Agent.name)).all()
    return render_template("agents/index.html", agents=agents, default_model=DEFAULT_MODEL)


@bp.get("/<uuid:agent_id>")
@login_required
def editor(agent_id: uuid.UUID):
    caller = _caller()
    agent = service.get_agent(caller, agent_id)
    versions = db.session.scalars(service.list_versions(agent)
                                  .order_by(AgentVersion.number.desc())).all()
    can_edit = caller.sees_whole_tenant or agent.owner_id == caller.user_id
    return render_template("agents/editor.html", agent=agent, versions=versions,
                           can_edit=can_edit, latest=versions[0] if versions else None)


@bp.post("/<uuid:agent_id>/versions")
@login_required
def new_version(agent_id: uuid.UUID):
    caller = _caller()
    agent = service.get_agent(caller, agent_id, for_edit=True)
    try:
        version = service.create_version(caller, agent, **_version_from_form())
        if request.form.get("publish"):
            service.publish(caller, agent, version.number)
        db.session.commit()
        flash(f"Saved version {version.number}.")
    except ApiError as exc:
        db.session.rollback()
        flash(exc.message)
    return redirect(url_for(".editor", agent_id=agent_id))


@bp.post("/<uuid:agent_id>/publish")
@login_required
def publish(agent_id: uuid.UUID):
    caller = _caller()
    agent = service.get_agent(caller, agent_id, for_edit=True)
    number = request.form.get("version", type=int) or 0
    service.publish(caller, agent, number)
    db.session.commit()
    flash(f"Version {number} is live.")
    return redirect(url_for(".editor", agent_id=agent_id))


@bp.get("/<uuid:agent_id>/sandbox")
@login_required
def sandbox(agent_id: uuid.UUID):
    agent = service.get_agent(_caller(), agent_id)
    return render_template("agents/sandbox.html", agent=agent)


@bp.post("/<uuid:agent_id>/sandbox")
@login_required
def sandbox_run(agent_id: uuid.UUID):
    """JSON for the sandbox's script (CSRF header checked like any form)."""
    caller = _caller()
    body = request.get_json(silent=True) or {}
    try:
        agent = service.get_agent(caller, agent_id)
        execution, _ = executions.start_execution(
            caller, agent, input=str(body.get("input", "")),
            variables=body.get("variables") or {},
            conversation_id=body.get("conversation_id") or None, source="sandbox")
    except ApiError as exc:
        return jsonify({"error": {"code": exc.code, "message": exc.message}}), exc.status
    return jsonify({"execution_id": str(execution.id),
                    "conversation_id": str(execution.conversation_id),
                    "events_url": url_for(".events", execution_id=execution.id)}), 202


@bp.get("/executions/<uuid:execution_id>/events")
@login_required
def events(execution_id: uuid.UUID):
    execution = executions.get_execution(_caller(), execution_id)
    return streaming.execution_response(execution.id, request.headers.get("Last-Event-ID"))


@bp.get("/executions")
@login_required
def history():
    caller = _caller()
    status = request.args.get("status") or None
    agent_id = request.args.get("agent_id") or None
    try:
        agent_key = uuid.UUID(agent_id) if agent_id else None
    except ValueError:
        agent_key = None
    stmt = executions.filtered(caller, agent_id=agent_key,
                               status=status if status in EXECUTION_STATUSES else None)
    rows = db.session.scalars(stmt.order_by(Execution.created_at.desc()).limit(100)).all()
    names = {a.id: a.name for a in db.session.scalars(service.visible_agents(caller))}
    return render_template("agents/history.html", rows=rows, names=names,
                           statuses=EXECUTION_STATUSES, status=status)


@bp.get("/executions/<uuid:execution_id>")
@login_required
def execution_detail(execution_id: uuid.UUID):
    execution = executions.get_execution(_caller(), execution_id)
    return render_template("agents/execution.html", e=execution)


@bp.get("/usage")
@login_required
def usage_page():
    caller = _caller()
    per_day = usage.daily_totals(caller, "tenant")
    per_customer = usage.daily_totals(caller, "customer") if caller.sees_whole_tenant else []
    customers: dict[str, dict[str, int]] = {}
    for row in per_customer:
        total = customers.setdefault(row.key or "-", {"executions": 0, "tokens": 0, "cost": 0})
        total["executions"] += row.executions
        total["tokens"] += row.prompt_tokens + row.completion_tokens
        total["cost"] += row.cost_micros
    if customers:
        from sqlalchemy import select

        from app.auth.models import User

        emails = {str(u.id): u.email for u in db.session.scalars(
            select(User).where(User.id.in_([uuid.UUID(k) for k in customers if k != "-"])))}
        customers = {emails.get(k, k): v for k, v in customers.items()}
    from app.web import charts

    chart = charts.daily_bars(per_day, 30, value=lambda r: r.executions, label="Executions")
    tokens = charts.daily_bars(per_day, 30, value=lambda r: r.prompt_tokens +
                               r.completion_tokens, label="Tokens")
    return render_template("agents/usage.html", per_day=per_day, chart=chart,
                           tokens_chart=tokens, customers=customers,
                           quota=usage_of(caller.user_id))


@bp.route("/provider", methods=["GET", "POST"])
@require_role("RESELLER")
def provider():
    """The reseller's own provider key: saved encrypted, never shown back."""
    if request.method == "GET":
        return render_template("agents/provider.html", status=provider_settings.describe(),
                               error=None, base_url=None)
    try:
        provider_settings.save(request.form.get("api_key"), request.form.get("base_url"))
    except ApiError as exc:
        db.session.rollback()
        return render_template("agents/provider.html", status=provider_settings.describe(),
                               error=exc.message, base_url=request.form.get("base_url")), 400
    db.session.commit()
    flash("Saved: your customers' executions now use your key.")
    return redirect(url_for(".provider"))


@bp.post("/provider/clear")
@require_role("RESELLER")
def clear_provider():
    provider_settings.clear()
    db.session.commit()
    flash("Your key is removed.")
    return redirect(url_for(".provider"))
