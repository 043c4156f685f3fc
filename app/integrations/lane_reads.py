"""The integrations feature's reads in the read lane (app/api/lane): the webhook endpoints
page, from the same statement and schema as the route in app/integrations/api.py."""

from __future__ import annotations

from app.api.lane.remembered import remembered_route
from app.api.lane.routes import page_route
from app.integrations import service
from app.integrations.api import SCOPE
from app.integrations.models import WebhookEndpoint
from app.integrations.schemas import EndpointSchema

page_route("/api/v1/webhooks/endpoints", scopes=(SCOPE,), schema=EndpointSchema,
           statement=lambda principal: service.endpoints_query(
               service.Actor(principal.user_id, principal.role)),
           order_by=(WebhookEndpoint.created_at, WebhookEndpoint.id))

# The reads the route answers and the lane remembers (app/api/lane/remembered.py). An
# endpoint's signing secret is not among them: plaintext secrets are not kept in memory.
remembered_route("/api/v1/webhooks/endpoints/<endpoint_id>", tables=("webhook_endpoints",))
remembered_route("/api/v1/webhooks/deliveries", tables=(
    "webhook_deliveries", "webhook_events", "webhook_endpoints", "rest_hooks"))
remembered_route("/api/v1/webhooks/deliveries/<delivery_id>", tables=(
    "webhook_deliveries", "webhook_events", "webhook_endpoints", "rest_hooks",
    "webhook_attempts"))
remembered_route("/api/v1/webhooks/event-types", tables=())  # the catalogue in the code
remembered_route("/api/v1/hooks", tables=("rest_hooks",))
remembered_route("/api/v1/hooks/samples/<event>", tables=("webhook_events",))
