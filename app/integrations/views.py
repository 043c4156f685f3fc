"""Integrations pages: endpoints, their deliveries and attempts, replay, test event, and
copyable examples for Zapier, n8n and curl. Customers manage their own endpoints; the
reseller's team manages the tenant's."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from app.auth.permissions import require_role
from app.errors import ApiError
from app.extensions import db
from app.integrations import hooks, service
from app.integrations.catalogue import EVENTS
from app.integrations.events import payload
from app.integrations.models import WebhookDelivery, WebhookEndpoint
from tenants.urls import absolute_url

bp = Blueprint("integrations", __name__, url_prefix="/integrations")
ROLES = ("RESELLER", "USER", "ADMIN")
PAGE_SIZE = 50


class EndpointForm(FlaskForm):
    url = StringField("Endpoint URL", validators=[DataRequired(), Length(max=2048)])
    description = StringField("Description", validators=[Length(max=255)])
    event_types = SelectMultipleField("Events (none ticked: all)", choices=sorted(EVENTS),
                                      widget=ListWidget(prefix_label=False),
                                      option_widget=CheckboxInput())


class ActionForm(FlaskForm):
    """CSRF only: the buttons on the endpoint and delivery pages."""


def _actor() -> service.Actor:
    return service.Actor(current_user.id, current_user.role)


def _examples() -> dict[str, str]:
    api = absolute_url("/api/v1")
    return {"api": api, "events": sorted(EVENTS), "docs": absolute_url("/api/docs")}


@bp.route("", methods=["GET", "POST"])
@require_role(*ROLES)
def endpoints():
    form = EndpointForm()
    status = 200
    created = None
    if form.validate_on_submit():
        try:
            endpoint, secret = service.create_endpoint(
                _actor(), form.url.data, form.event_types.data, form.description.data or "")
        except ApiError as exc:
            form.url.errors.append(exc.message)
            status = 422
        else:
            db.session.commit()
            created = (endpoint, secret)
            form = EndpointForm(formdata=None)
    elif form.is_submitted():
        status = 422
    rows = db.session.scalars(service.endpoints_query(_actor()).order_by(
        WebhookEndpoint.created_at.desc())).all()
    subscriptions = db.session.scalars(hooks.hooks_query(_actor())).all()
    return render_template("integrations/endpoints.html", form=form, endpoints=rows,
                           created=created, subscriptions=subscriptions,
                           examples=_examples()), status


@bp.get("/endpoints/<endpoint_id>")
@require_role(*ROLES)
def endpoint(endpoint_id: str):
    found = service.get_endpoint(_actor(), endpoint_id)
    deliveries = db.session.scalars(
        service.deliveries_query(_actor(), endpoint_id=str(found.id))
        .order_by(WebhookDelivery.created_at.desc()).limit(PAGE_SIZE)).all()
    secret = service.reveal_secret(found) if request.args.get("reveal") else None
    return render_template("integrations/endpoint.html", endpoint=found, deliveries=deliveries,
                           secret=secret, action=ActionForm(), examples=_examples())


@bp.post("/endpoints/<endpoint_id>/<action>")
@require_role(*ROLES)
def endpoint_action(endpoint_id: str, action: str):
    found = service.get_endpoint(_actor(), endpoint_id)
    if not ActionForm().validate_on_submit():
        raise ApiError(400, "bad_request", "The form expired; reload the page and try again.")
    target = url_for("integrations.endpoint", endpoint_id=found.id)
    if action == "test":
        service.send_test_event(found)
        flash("A test event is on its way.")
    elif action == "rotate":
        service.rotate_secret(found, timedelta(hours=24))
        flash("New secret issued; the old one keeps signing for 24 hours.")
        target = url_for("integrations.endpoint", endpoint_id=found.id, reveal=1)
    elif action in ("enable", "disable"):
        service.update_endpoint(found, enabled=action == "enable")
        flash(f"Endpoint {action}d.")
    elif action == "delete":
        service.delete_endpoint(found)
        flash("Endpoint deleted.")
        target = url_for("integrations.endpoints")
    else:
        raise ApiError(404, "not_found", "There is no such action.")
    db.session.commit()
    return redirect(target)


@bp.get("/deliveries/<delivery_id>")
@require_role(*ROLES)
def delivery(delivery_id: str):
    found = service.get_delivery(_actor(), delivery_id)
    endpoint_row = (db.session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.id == found.endpoint_id)).first() if found.endpoint_id else None)
    return render_template("integrations/delivery.html", delivery=found,
                           endpoint=endpoint_row, payload=payload(found.event),
                           action=ActionForm())


@bp.post("/deliveries/<delivery_id>/replay")
@require_role(*ROLES)
def replay(delivery_id: str):
    found = service.get_delivery(_actor(), delivery_id)
    if not ActionForm().validate_on_submit():
        raise ApiError(400, "bad_request", "The form expired; reload the page and try again.")
    try:
        service.replay(found)
    except ApiError as exc:
        flash(exc.message)
    else:
        db.session.commit()
        flash("Replay queued.")
    return redirect(url_for("integrations.delivery", delivery_id=found.id))
