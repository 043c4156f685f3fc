"""Dashboard pages: agents, the editor (versions, publish, roll back), the streaming sandbox,
execution history and usage. Customers see their own; a reseller sees its templates and
every customer's usage. Thin: the services decide, these pages shape."""

from __future__ import annotations

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

from app.agents import (
    builder,
    customer_view,
    executions,
    provider_settings,
    service,
    streaming,
    usage,
)
from app.agents.models import EXECUTION_STATUSES, Agent, AgentVersion, Execution
from app.agents.quotas import usage_of
from app.agents.service import Caller
from app.agents.templating import TYPES
from app.auth.permissions import require_role
from app.errors import ApiError
from app.extensions import db

bp = Blueprint("agents_pages", __name__, url_prefix="/agents")


def _caller() -> Caller:
    return Caller(current_user.id, current_user.role)


def _editor(agent: Agent, form: builder.BuilderForm | None = None, status: int = 200):
    caller = _caller()
    versions = db.session.scalars(service.list_versions(agent)
                                  .order_by(AgentVersion.number.desc())).all()
    latest = versions[0] if versions else None
    form = form or builder.BuilderForm.from_version(latest)
    can_edit = caller.sees_whole_tenant or agent.owner_id == caller.user_id
    return render_template("agents/editor.html", agent=agent, versions=versions,
                           can_edit=can_edit, latest=latest, form=form,
                           **_model_choice(caller, form), types=list(TYPES),
                           methods=builder.TOOL_METHODS), status


def _model_choice(caller: Caller, form: builder.BuilderForm) -> dict:
    """What the builder's templates need about the provider's model: staff see and choose it;
    a customer sees neither the model nor the list (customer_view)."""
    details = customer_view.sees_provider_details(caller.role)
    return {"provider_details": details,
            "models": builder.configured_models(form.model) if details else []}


@bp.route("", methods=["GET", "POST"])
@login_required
def index():
    caller = _caller()
    form = builder.BuilderForm.from_version(None)
    status = 200
    if request.method == "POST":
        form, version = builder.parse(request.form, caller.sees_whole_tenant)
        name = request.form.get("name", "").strip()
        if not name:
            form.errors["name"] = "Give the agent a name."
        if version is not None and not form.errors:
            try:
                agent = service.create_agent(caller, name=name,
                                             slug=request.form.get("slug") or None,
                                             description=request.form.get("description", ""),
                                             version=version)
                db.session.commit()
                return redirect(url_for(".editor", agent_id=agent.id))
            except ApiError as exc:
                db.session.rollback()
                form.errors["form"] = _in_product_words(exc)
        status = 422
    agents = db.session.scalars(service.visible_agents(caller)
                                .order_by(Agent.is_template.desc(), Agent.name)).all()
    return render_template("agents/index.html", agents=agents, form=form,
                           **_model_choice(caller, form), types=list(TYPES),
                           methods=builder.TOOL_METHODS, values=request.form), status


@bp.get("/<uuid:agent_id>")
@login_required
def editor(agent_id: uuid.UUID):
    return _editor(service.get_agent(_caller(), agent_id))


@bp.post("/<uuid:agent_id>/versions")
@login_required
def new_version(agent_id: uuid.UUID):
    caller = _caller()
    agent = service.get_agent(caller, agent_id, for_edit=True)
    form, fields = builder.parse(request.form, caller.sees_whole_tenant)
    if fields is None:
        return _editor(agent, form, 422)  # every row kept, each error next to its field
    try:
        version = service.create_version(caller, agent, **fields)
        if request.form.get("publish"):
            service.publish(caller, agent, version.number)
        db.session.commit()
    except ApiError as exc:
        db.session.rollback()
        form.errors["form"] = _in_product_words(exc)
        return _editor(service.get_agent(caller, agent_id), form, 422)
    flash(f"Saved version {version.number}.")
    return redirect(url_for(".editor", agent_id=agent_id))


_FIELD_WORDS = {"temperature": "Temperature", "max_output_tokens": "Max output tokens",
                "system_prompt": "System prompt", "model": "Model", "variables": "Variables",
                "tools": "Tools", "name": "Name", "slug": "Slug"}


def _in_product_words(exc: ApiError) -> str:
    """The service's message, with per-field details named as the form names them."""
    fields = exc.details.get("fields") if isinstance(exc.details, dict) else None
    if not isinstance(fields, dict) or not fields:
        return exc.message
    parts = []
    for name, problem in fields.items():
        text = problem if isinstance(problem, str) else "; ".join(map(str, problem))
        parts.append(f"{_FIELD_WORDS.get(name, name.replace('_', ' ').capitalize())}: {text}")
    return " ".join(parts)


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


@bp.get("/<uuid:agent_id>/compare")
@login_required
def compare(agent_id: uuid.UUID):
    """What changed from version ``a`` to version ``b`` (default: the two newest)."""
    caller = _caller()
    agent = service.get_agent(caller, agent_id)
    numbers = db.session.scalars(service.list_versions(agent).with_only_columns(
        AgentVersion.number).order_by(AgentVersion.number.desc())).all()
    b = request.args.get("b", type=int) or (numbers[0] if numbers else 1)
    a = request.args.get("a", type=int) or (b - 1 if b > 1 else b)
    old, new = service.get_version(agent, a), service.get_version(agent, b)
    return render_template("agents/compare.html", agent=agent, old=old, new=new,
                           numbers=numbers, **builder.diff(
                               old, new, customer_view.sees_provider_details(caller.role)))


@bp.get("/<uuid:agent_id>/sandbox")
@login_required
def sandbox(agent_id: uuid.UUID):
    caller = _caller()
    agent = service.get_agent(caller, agent_id)
    can_edit = caller.sees_whole_tenant or agent.owner_id == caller.user_id
    # Only who may edit the agent tries unpublished versions; others run the live one.
    versions = (db.session.scalars(service.list_versions(agent).order_by(
        AgentVersion.number.desc())).all() if can_edit else [])
    live = next((v for v in versions if v.number == agent.published_version), None)
    if live is None and agent.published_version is not None:
        live = service.get_version(agent, agent.published_version)
    return render_template("agents/sandbox.html", agent=agent, versions=versions, live=live,
                           can_edit=can_edit,
                           variables={v.number: v.variables for v in versions} or (
                               {live.number: live.variables} if live else {}))


@bp.post("/<uuid:agent_id>/sandbox")
@login_required
def sandbox_run(agent_id: uuid.UUID):
    """JSON for the sandbox's script (CSRF header checked like any form)."""
    caller = _caller()
    body = request.get_json(silent=True) or {}
    try:
        number = body.get("version")
        agent = service.get_agent(caller, agent_id, for_edit=number is not None)
        if number is not None and not isinstance(number, int):
            raise ApiError(422, "invalid_version", "Choose a version number.")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise ApiError(422, "invalid_variables", "Variables are name: value pairs.")
        execution, _ = executions.start_execution(
            caller, agent, input=str(body.get("input", "")), variables=variables,
            conversation_id=body.get("conversation_id") or None, source="sandbox",
            version_number=number)
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


@bp.get("/executions/<uuid:execution_id>/summary")
@login_required
def summary(execution_id: uuid.UUID):
    """Tokens and latency of one sandbox answer (never the provider's model or cost)."""
    e = executions.get_execution(_caller(), execution_id)
    return jsonify({"status": e.status, "version": e.version_number,
                    "prompt_tokens": e.prompt_tokens, "completion_tokens": e.completion_tokens,
                    "queue_ms": e.queue_wait_ms, "run_ms": e.run_ms,
                    "first_token_ms": int((e.first_token_at - e.started_at).total_seconds()
                                          * 1000) if e.first_token_at and e.started_at
                    else None})


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
    # provider_details: whether this reader may see the provider's model and cost.
    return render_template("agents/history.html", rows=rows, names=names,
                           statuses=EXECUTION_STATUSES, status=status,
                           provider_details=customer_view.sees_provider_details(caller.role))


@bp.get("/executions/<uuid:execution_id>")
@login_required
def execution_detail(execution_id: uuid.UUID):
    caller = _caller()
    execution = executions.get_execution(caller, execution_id)
    agent = db.session.get(Agent, execution.agent_id)
    return render_template("agents/execution.html", e=execution,
                           agent_name=agent.name if agent else "—",
                           provider_details=customer_view.sees_provider_details(caller.role))


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
                           quota=usage_of(caller.user_id),
                           provider_details=customer_view.sees_provider_details(caller.role))


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
