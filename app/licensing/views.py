"""Dashboard pages: resellers manage products, policies, licenses, machines and read the
validation log; customers see their own licenses and machines.

Forms are plain HTML posting to these views (CSRF is enforced app-wide for pages); every
rule lives in the services, whose ApiErrors become a flashed message here.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from app.api.pagination import paginate
from app.auth import audit
from app.auth.permissions import require_role
from app.errors import ApiError
from app.extensions import db
from app.licensing import bulk as bulk_service
from app.licensing import machines as machine_service
from app.licensing import service
from app.licensing.models import BulkIssue, License, Machine, Policy, Product, ValidationRecord

bp = Blueprint("licensing_pages", __name__, url_prefix="/licensing")
customer_bp = Blueprint("my_licenses", __name__)
PAGE_SIZE = 50


# The forms' own words for the services' field names, so "max_machines:" never shows.
FIELD_LABELS = {
    "name": "Name", "code": "Code", "entitlements": "Entitlements", "product_id": "Product",
    "policy_id": "Policy", "duration_days": "Duration", "expiry_strategy": "When expired",
    "grace_period_seconds": "Grace period", "max_machines": "Maximum machines",
    "heartbeat_interval_seconds": "Heartbeat interval",
    "max_executions_per_period": "Maximum executions", "customer_email": "Customer email",
    "count": "How many", "expires_at": "Expiry", "execution_period_seconds": "Period",
}


def field_errors(exc: ApiError) -> dict[str, str]:
    """The service's per-field problems, each a sentence starting with its label."""
    fields = exc.details.get("fields") if isinstance(exc.details, dict) else None
    out = {}
    for name, problem in (fields or {}).items():
        text = problem if isinstance(problem, str) else "; ".join(map(str, problem))
        label = FIELD_LABELS.get(name, name.replace("_", " ").capitalize())
        out[name] = f"{label}: {text[:1].lower()}{text[1:]}".rstrip(".") + "."
    return out


def _fail(exc: ApiError) -> None:
    """A refused action, flashed in the error style and in the form's words."""
    db.session.rollback()
    flash(" ".join([exc.message, *field_errors(exc).values()]).strip(), "error")


def _int_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value else None


def _uuid(value: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        raise ApiError(422, "validation_failed", "Choose an item from the list.") from None


def _page_args() -> tuple[str | None, int]:
    return request.args.get("cursor") or None, PAGE_SIZE


def _refused(exc: ApiError) -> tuple[dict[str, str], str]:
    """A form refused by a service: its errors by field (shown next to the fields, with what
    was typed kept) and the sentence for the top of the form."""
    db.session.rollback()
    return field_errors(exc), exc.message


@bp.route("/products", methods=["GET", "POST"])
@require_role("RESELLER")
def products():
    errors, message, status = {}, None, 200
    if request.method == "POST":
        form = request.form
        try:
            service.create_product(form.get("name", ""), form.get("code", "").strip(),
                                   entitlements=[e.strip() for e in
                                                 form.get("entitlements", "").split(",")
                                                 if e.strip()])
            db.session.commit()
            flash("Product created.")
            return redirect(url_for(".products"))
        except ApiError as exc:
            (errors, message), status = _refused(exc), 422
    rows = db.session.scalars(select(Product).order_by(Product.created_at.desc())).all()
    return render_template("licensing/products.html", products=rows, errors=errors,
                           message=message, values=request.form), status


@bp.route("/policies", methods=["GET", "POST"])
@require_role("RESELLER")
def policies():
    errors, message, status = {}, None, 200
    if request.method == "POST":
        form = request.form
        try:
            product = service.get_product(_uuid(form.get("product_id")))
            data = service.PolicyInput(
                name=form.get("name", ""),
                duration_days=_int_or_none(form.get("duration_days")),
                expiry_strategy=form.get("expiry_strategy", "restrict"),
                grace_period_seconds=_int_or_none(form.get("grace_period_seconds")) or 0,
                max_machines=_int_or_none(form.get("max_machines")),
                floating=form.get("floating") == "on",
                heartbeat_interval_seconds=_int_or_none(form.get("heartbeat_interval_seconds")),
                max_executions_per_period=_int_or_none(form.get("max_executions_per_period")),
                fingerprint_required=form.get("fingerprint_required") == "on",
                require_heartbeat=form.get("require_heartbeat") == "on",
                check_in_interval_seconds=_int_or_none(form.get("check_in_interval_seconds")),
                max_cores=_int_or_none(form.get("max_cores")),
                entitlements=[e.strip() for e in form.get("entitlements", "").split(",")
                              if e.strip()])
            service.create_policy(product, data)
            db.session.commit()
            flash("Policy created.")
            return redirect(url_for(".policies"))
        except (ApiError, ValueError) as exc:
            (errors, message), status = _refused(
                exc if isinstance(exc, ApiError) else
                ApiError(422, "validation_failed", "The numbers must be whole numbers.")), 422
    rows = db.session.scalars(select(Policy).order_by(Policy.created_at.desc())).all()
    products_ = db.session.scalars(select(Product).order_by(Product.name)).all()
    return render_template("licensing/policies.html", policies=rows, products=products_,
                           errors=errors, message=message, values=request.form), status


@bp.route("/licenses")
@require_role("RESELLER")
def licenses():
    q, status = request.args.get("q") or None, request.args.get("status") or None
    cursor, limit = _page_args()
    page = paginate(service.search_licenses(q, status), cursor=cursor, limit=limit,
                    order_by=(License.created_at, License.id))
    bulks = db.session.scalars(select(BulkIssue).order_by(BulkIssue.created_at.desc())
                               .limit(10)).all()
    policies_ = db.session.scalars(select(Policy).order_by(Policy.name)).all()
    return render_template("licensing/licenses.html", page=page, q=q or "", status=status or "",
                           bulks=bulks, policies=policies_,
                           refresh=any(b.status in ("queued", "running") for b in bulks))


@bp.post("/licenses/issue")
@require_role("RESELLER")
def issue():
    form = request.form
    try:
        license_ = service.issue_license(service.get_policy(_uuid(form.get("policy_id"))),
                                         name=form.get("name", ""),
                                         customer_email=form.get("customer_email") or None)
        db.session.commit()
        flash("License issued.")
        return redirect(url_for(".license_detail", license_id=license_.id))
    except ApiError as exc:
        _fail(exc)
        return redirect(url_for(".licenses"))


@bp.post("/licenses/bulk")
@require_role("RESELLER")
def bulk_issue():
    form = request.form
    try:
        count = int(form.get("count") or 0)
        bulk_service.start(service.get_policy(_uuid(form.get("policy_id"))), count,
                           form.get("name_prefix", ""), current_user.id)
        db.session.commit()
        flash(f"Issuing {count} licenses in the background.")
    except ValueError:
        flash("The number of licenses must be a whole number.")
    except ApiError as exc:
        _fail(exc)
    return redirect(url_for(".licenses"))


@bp.get("/bulk/<uuid:bulk_id>/licenses.csv")
@require_role("RESELLER")
def bulk_csv(bulk_id: uuid.UUID):
    row = bulk_service.get(bulk_id)
    if row.status != "done":
        raise ApiError(409, "bulk_issue_running", "The licenses are still being issued.")
    return Response(stream_with_context(bulk_service.csv_lines(row)), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="licenses-{row.id}.csv"'})


@bp.get("/licenses/<uuid:license_id>")
@require_role("RESELLER")
def license_detail(license_id: uuid.UUID):
    license_ = service.get_license(license_id)
    return render_template("licensing/license.html", license=license_,
                           machines=_machine_rows(license_.machines))


_PAGE_ACTIONS = {"suspend": service.suspend, "reinstate": service.reinstate,
                 "revoke": service.revoke, "renew": service.renew}


@bp.post("/licenses/<uuid:license_id>/<action>")
@require_role("RESELLER")
def license_action(license_id: uuid.UUID, action: str):
    license_ = service.get_license(license_id)
    try:
        if action == "customer":
            service.attach_customer(license_, request.form.get("customer_email"))
        elif action in _PAGE_ACTIONS:
            _PAGE_ACTIONS[action](license_)
        else:
            raise ApiError(404, "not_found", "No such action.")
        db.session.commit()
        flash(f"Done: {action}.")
    except ApiError as exc:
        _fail(exc)
    return redirect(url_for(".license_detail", license_id=license_id))


@bp.post("/machines/<uuid:machine_id>/deactivate")
@require_role("RESELLER")
def deactivate(machine_id: uuid.UUID):
    machine = db.session.get(Machine, machine_id)
    if machine is None:
        raise ApiError(404, "machine_not_found", "No machine has this id.")
    license_id = machine.license_id
    machine_service.deactivate(machine)
    audit.record("machine_deactivated", **audit.acting(), target_type="machine",
                 target_id=machine.id, license_id=str(license_id),
                 fingerprint=machine.fingerprint)
    db.session.commit()
    flash("Machine deactivated; its seat is free.")
    return redirect(url_for(".license_detail", license_id=license_id))


def _machine_rows(rows: list[Machine]) -> list[dict[str, Any]]:
    return [{"machine": m, "dead": machine_service.is_dead(m, m.license.policy)} for m in rows]


@bp.get("/machines")
@require_role("RESELLER")
def machines():
    cursor, limit = _page_args()
    page = paginate(select(Machine), cursor=cursor, limit=limit,
                    order_by=(Machine.created_at, Machine.id))
    return render_template("licensing/machines.html", rows=_machine_rows(page.items),
                           page=page)


@bp.get("/validations")
@require_role("RESELLER")
def validations():
    cursor, limit = _page_args()
    page = paginate(select(ValidationRecord), cursor=cursor, limit=limit,
                    order_by=(ValidationRecord.validated_at, ValidationRecord.id))
    return render_template("licensing/validations.html", page=page)


@customer_bp.get("/my/licenses")
@require_role("USER", "RESELLER")
def my_licenses():
    if service.claim_pending(current_user):
        db.session.commit()
    owned = db.session.scalars(select(License).where(License.owner_id == current_user.id)
                               .order_by(License.created_at.desc())).all()
    return render_template("licensing/my_licenses.html", licenses=owned,
                           machines={lic.id: _machine_rows(lic.machines) for lic in owned})


def register_nav(app) -> None:
    from app.web import nav

    nav.register(app, "Licenses", "licensing_pages.licenses", roles=("RESELLER",))
    nav.register(app, "My licenses", "my_licenses.my_licenses", roles=("USER",))
