"""Marshmallow schemas of the billing API."""

from __future__ import annotations

from marshmallow import Schema, fields


class WebhookAckSchema(Schema):
    received = fields.Boolean(required=True)
    event_id = fields.String(required=True)
    outcome = fields.String(required=True,
                            metadata={"description": "processed, duplicate or ignored_…"})
