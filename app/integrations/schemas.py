"""Request and response shapes of the webhooks and REST-hooks API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.pagination import CursorArgsSchema
from app.integrations.catalogue import EVENTS
from app.integrations.events import payload

_EVENT = validate.OneOf(sorted(EVENTS))


class EndpointSchema(Schema):
    id = fields.UUID(required=True)
    url = fields.String(required=True, metadata={"example": "https://example.com/webhooks"})
    description = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True, metadata={
        "description": "The event types delivered; empty means all."})
    owner_user_id = fields.UUID(allow_none=True, metadata={
        "description": "The customer owning the endpoint; null for reseller-level ones."})
    enabled = fields.Boolean(required=True)
    disabled_reason = fields.String(allow_none=True)
    disabled_at = fields.AwareDateTime(allow_none=True)
    failing_since = fields.AwareDateTime(allow_none=True)
    previous_secret_expires_at = fields.AwareDateTime(allow_none=True, metadata={
        "description": "Until then the previous secret signs too (after a rotation)."})
    created_at = fields.AwareDateTime(required=True)


class EndpointCreatedSchema(EndpointSchema):
    secret = fields.String(required=True, metadata={
        "description": "The signing secret (Standard Webhooks).", "example": "whsec_…"})


class EndpointCreateSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(1, 2048))
    event_types = fields.List(fields.String(validate=_EVENT), load_default=list)
    description = fields.String(load_default="", validate=validate.Length(max=255))


class EndpointUpdateSchema(Schema):
    url = fields.String(validate=validate.Length(1, 2048))
    event_types = fields.List(fields.String(validate=_EVENT))
    description = fields.String(validate=validate.Length(max=255))
    enabled = fields.Boolean()


class RotateSchema(Schema):
    overlap_seconds = fields.Integer(load_default=86_400, validate=validate.Range(0, 7 * 86_400),
                                     metadata={"description": "How long the old secret keeps "
                                                              "signing as a second signature."})


class SecretSchema(Schema):
    secret = fields.String(required=True)
    previous_secret_expires_at = fields.AwareDateTime(allow_none=True)


class AttemptSchema(Schema):
    number = fields.Integer(required=True)
    started_at = fields.AwareDateTime(required=True)
    status_code = fields.Integer(allow_none=True)
    latency_ms = fields.Integer(allow_none=True)
    response_excerpt = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    succeeded = fields.Boolean(required=True)


class DeliverySchema(Schema):
    id = fields.UUID(required=True)
    webhook_id = fields.String(required=True, metadata={
        "description": "The webhook-id header: the same on every attempt."})
    event_id = fields.Function(lambda d: d.event.public_id, required=True)
    event_type = fields.Function(lambda d: d.event.type, required=True)
    endpoint_id = fields.UUID(allow_none=True)
    hook_id = fields.UUID(allow_none=True)
    url = fields.String(required=True)
    status = fields.String(required=True, metadata={
        "description": "pending, sending, succeeded, failed or cancelled"})
    attempt_count = fields.Integer(required=True)
    next_attempt_at = fields.AwareDateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    delivered_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime(required=True)


class DeliveryDetailSchema(DeliverySchema):
    attempts = fields.List(fields.Nested(AttemptSchema), required=True)
    payload = fields.Function(lambda d: payload(d.event), required=True, metadata={
        "description": "The body sent (docs/webhook-events.md)."})


class DeliveryArgsSchema(CursorArgsSchema):
    endpoint_id = fields.UUID(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf(
        ["pending", "sending", "succeeded", "failed", "cancelled"]))


class EventTypeSchema(Schema):
    name = fields.String(required=True)
    version = fields.Integer(required=True)
    description = fields.String(required=True)
    example = fields.Dict(required=True)


class HookCreateSchema(Schema):
    target_url = fields.String(required=True, validate=validate.Length(1, 2048))
    event = fields.String(required=True, validate=_EVENT)


class HookSchema(Schema):
    id = fields.UUID(required=True)
    target_url = fields.String(required=True)
    event = fields.String(required=True, attribute="event_type")
    created_at = fields.AwareDateTime(required=True)


class EventItemSchema(Schema):
    """The body every receiver gets (docs/webhook-events.md)."""

    id = fields.String(required=True, metadata={"example": "evt_2b0c5f4e8d9a4c1b"})
    type = fields.String(required=True)
    version = fields.Integer(required=True)
    timestamp = fields.String(required=True)
    data = fields.Dict(required=True)
