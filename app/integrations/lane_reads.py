"""The integrations feature's reads in the read lane (app/api/lane): the webhook endpoints
page, from the same statement and schema as the route in app/integrations/api.py."""

from __future__ import annotations

from app.api.lane.routes import page_route
from app.integrations import service
from app.integrations.api import SCOPE
from app.integrations.models import WebhookEndpoint
from app.integrations.schemas import EndpointSchema

page_route("/api/v1/webhooks/endpoints", scopes=(SCOPE,), schema=EndpointSchema,
           statement=lambda principal: service.endpoints_query(
               service.Actor(principal.user_id, principal.role)),
           order_by=(WebhookEndpoint.created_at, WebhookEndpoint.id))
