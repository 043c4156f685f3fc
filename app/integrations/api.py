"""Webhooks API (`/api/v1/webhooks`) and REST hooks for Zapier and n8n (`/api/v1/hooks`).

Every operation needs the `webhooks:manage` scope. A customer manages their own endpoints and
sees what was delivered to them; the reseller's team manages the tenant's.
"""

from __future__ import annotations

from datetime import timedelta

from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth.guard import current_principal, require
from app.extensions import db
from app.integrations import hooks, service
from app.integrations.catalogue import EVENTS
from app.integrations.models import WebhookDelivery, WebhookEndpoint
from app.integrations.schemas import (
    DeliveryArgsSchema,
    DeliveryDetailSchema,
    DeliverySchema,
    EndpointCreatedSchema,
    EndpointCreateSchema,
    EndpointSchema,
    EndpointUpdateSchema,
    EventItemSchema,
    EventTypeSchema,
    HookCreateSchema,
    HookSchema,
    RotateSchema,
    SecretSchema,
)

SCOPE = "webhooks:manage"
blp = Blueprint("webhooks_api", __name__, description="Signed outbound webhooks")
hooks_blp = Blueprint("hooks_api", __name__,
                      description="REST hooks (Zapier, n8n): subscribe, unsubscribe, samples")


def _actor() -> service.Actor:
    principal = current_principal()
    return service.Actor(principal.user_id, principal.role)


def _with_secret(endpoint: WebhookEndpoint, secret: str) -> dict:
    # The secret is not a column; hand the schema the endpoint's fields plus it.
    return {**{name: getattr(endpoint, name) for name in EndpointSchema._declared_fields},
            "secret": secret}


@blp.route("/event-types")
class EventTypes(MethodView):
    @blp.response(200, EventTypeSchema(many=True))
    @require(SCOPE)
    def get(self):
        """The event catalogue: every type an endpoint or hook can subscribe to."""
        return list(EVENTS.values())


@blp.route("/endpoints")
class Endpoints(MethodView):
    @blp.arguments(CursorArgsSchema, location="query")
    @blp.response(200, page_of(EndpointSchema))
    @require(SCOPE)
    def get(self, args):
        """List webhook endpoints, newest first."""
        page = paginate(service.endpoints_query(_actor()), cursor=args["cursor"],
                        limit=args["limit"],
                        order_by=(WebhookEndpoint.created_at, WebhookEndpoint.id))
        return {"items": page.items, "next_cursor": page.next_cursor}

    @blp.arguments(EndpointCreateSchema)
    @blp.response(201, EndpointCreatedSchema)
    @blp.alt_response(422, description="`url_not_allowed` (not a public http(s) address) or "
                                       "`unknown_event_type`")
    @require(SCOPE)
    def post(self, body):
        """Create an endpoint. The answer carries its signing secret (`whsec_…`).

        A customer's endpoint receives the events that concern them; one created by the
        reseller's team receives every event of the tenant. An empty `event_types` means all.
        """
        endpoint, secret = service.create_endpoint(_actor(), body["url"], body["event_types"],
                                                   body["description"])
        db.session.commit()
        return _with_secret(endpoint, secret)


@blp.route("/endpoints/<endpoint_id>")
class Endpoint(MethodView):
    @blp.response(200, EndpointSchema)
    @require(SCOPE)
    def get(self, endpoint_id: str):
        """One endpoint."""
        return service.get_endpoint(_actor(), endpoint_id)

    @blp.arguments(EndpointUpdateSchema)
    @blp.response(200, EndpointSchema)
    @require(SCOPE)
    def patch(self, body, endpoint_id: str):
        """Change the URL, the event filter, the description, or enable/disable.

        Enabling a disabled endpoint starts its 5-day failure window afresh.
        """
        endpoint = service.update_endpoint(service.get_endpoint(_actor(), endpoint_id), **body)
        db.session.commit()
        return endpoint

    @blp.response(204)
    @require(SCOPE)
    def delete(self, endpoint_id: str):
        """Delete an endpoint and its delivery log."""
        service.delete_endpoint(service.get_endpoint(_actor(), endpoint_id))
        db.session.commit()


@blp.route("/endpoints/<endpoint_id>/secret")
class EndpointSecret(MethodView):
    @blp.response(200, SecretSchema)
    @require(SCOPE)
    def get(self, endpoint_id: str):
        """The current signing secret."""
        endpoint = service.get_endpoint(_actor(), endpoint_id)
        return {"secret": service.reveal_secret(endpoint),
                "previous_secret_expires_at": endpoint.previous_secret_expires_at}


@blp.route("/endpoints/<endpoint_id>/rotate-secret")
class RotateSecret(MethodView):
    @blp.arguments(RotateSchema)
    @blp.response(200, SecretSchema)
    @require(SCOPE)
    def post(self, body, endpoint_id: str):
        """Issue a new secret. Until `previous_secret_expires_at` both secrets sign (two
        signatures in `webhook-signature`), so the receiver can switch without a gap."""
        endpoint = service.get_endpoint(_actor(), endpoint_id)
        secret = service.rotate_secret(endpoint, timedelta(seconds=body["overlap_seconds"]))
        db.session.commit()
        return {"secret": secret, "previous_secret_expires_at": endpoint.previous_secret_expires_at}


@blp.route("/endpoints/<endpoint_id>/test")
class TestEvent(MethodView):
    @blp.response(202, DeliverySchema)
    @require(SCOPE)
    def post(self, endpoint_id: str):
        """Send a `webhook.test` event to this endpoint (even a disabled one)."""
        delivery = service.send_test_event(service.get_endpoint(_actor(), endpoint_id))
        db.session.commit()
        return delivery


@blp.route("/deliveries")
class Deliveries(MethodView):
    @blp.arguments(DeliveryArgsSchema, location="query")
    @blp.response(200, page_of(DeliverySchema))
    @require(SCOPE)
    def get(self, args):
        """The delivery log, newest first; filter by `endpoint_id` and `status`."""
        stmt = service.deliveries_query(_actor(), args["endpoint_id"], args["status"])
        page = paginate(stmt, cursor=args["cursor"], limit=args["limit"],
                        order_by=(WebhookDelivery.created_at, WebhookDelivery.id))
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/deliveries/<delivery_id>")
class Delivery(MethodView):
    @blp.response(200, DeliveryDetailSchema)
    @require(SCOPE)
    def get(self, delivery_id: str):
        """One delivery with every attempt (status, latency, response excerpt) and the
        payload sent."""
        return service.get_delivery(_actor(), delivery_id)


@blp.route("/deliveries/<delivery_id>/replay")
class Replay(MethodView):
    @blp.response(202, DeliverySchema)
    @blp.alt_response(409, description="Still in progress (`delivery_in_progress`), or the "
                                       "endpoint is disabled or gone")
    @require(SCOPE)
    def post(self, delivery_id: str):
        """Send a finished delivery again now, with a fresh retry schedule and the same
        webhook-id."""
        delivery = service.replay(service.get_delivery(_actor(), delivery_id))
        db.session.commit()
        return delivery


# --- REST hooks --------------------------------------------------------------------------------

@hooks_blp.route("")
class Hooks(MethodView):
    @hooks_blp.arguments(HookCreateSchema)
    @hooks_blp.response(201, HookSchema)
    @require(SCOPE)
    def post(self, body):
        """Subscribe `target_url` to `event` (Zapier's performSubscribe, n8n's create).

        Answers `{id, …}`; keep the id to unsubscribe. A 410 from the target deletes the
        subscription.
        """
        principal = current_principal()
        hook = hooks.subscribe(_actor(), body["target_url"], body["event"],
                               api_key_id=principal.api_key_id)
        db.session.commit()
        return hook

    @hooks_blp.response(200, HookSchema(many=True))
    @require(SCOPE)
    def get(self):
        """The caller's subscriptions (n8n's check-exists)."""
        return list(db.session.scalars(hooks.hooks_query(_actor())))


@hooks_blp.route("/<hook_id>")
class Hook(MethodView):
    @hooks_blp.response(204)
    @require(SCOPE)
    def delete(self, hook_id: str):
        """Unsubscribe (Zapier's performUnsubscribe, n8n's delete)."""
        hooks.unsubscribe(_actor(), hook_id)
        db.session.commit()


@hooks_blp.route("/samples/<event>")
class Samples(MethodView):
    @hooks_blp.response(200, EventItemSchema(many=True))
    @require(SCOPE)
    def get(self, event: str):
        """Recent real events of this type, newest first, each with a unique `id` (Zapier's
        performList). Empty until the first such event happens."""
        return hooks.samples(_actor(), event)
