"""Request and answer shapes of /api/v1/widget (marshmallow)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.widget.keys import MAX_ORIGINS
from app.widget.service import MAX_MESSAGE_CHARS

MAX_CAP = 2**31 - 1  # the column is a PostgreSQL integer
HEX = validate.Regexp(r"^#[0-9a-fA-F]{6}$", error="a hex colour such as #1a2b3c")


class AppearanceSchema(Schema):
    name = fields.String(validate=validate.Length(max=60), metadata={"example": "Acme help"})
    primary_color = fields.String(validate=HEX, metadata={"example": "#e11d48"})
    accent_color = fields.String(validate=HEX, metadata={"example": "#f59e0b"})
    logo_url = fields.String(allow_none=True, validate=validate.Length(max=500))
    greeting = fields.String(validate=validate.Length(max=300),
                             metadata={"example": "Hi! Ask me about your order."})
    placeholder = fields.String(validate=validate.Length(max=100),
                                metadata={"example": "Type your question…"})


class WidgetKeyInSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 120))
    agent_id = fields.UUID(required=True)
    allowed_origins = fields.List(fields.String(validate=validate.Length(1, 255)),
                                  load_default=list, validate=validate.Length(max=MAX_ORIGINS),
                                  metadata={"example": ["https://shop.example"]})
    appearance = fields.Nested(AppearanceSchema, load_default=dict)
    monthly_cap = fields.Integer(load_default=None, allow_none=True,
                                 validate=validate.Range(0, MAX_CAP), metadata={
                                     "description": "Executions per calendar month (UTC) "
                                                    "through this key; empty: no cap of its "
                                                    "own (the owner's plan still applies)"})
    requires_license = fields.Boolean(load_default=False, metadata={
        "description": "License-gated: a token only for a license key that validates VALID"})
    owner_id = fields.UUID(load_default=None, allow_none=True, metadata={
        "description": "Reseller staff: the customer whose usage this is (default: you)"})


class WidgetKeyPatchSchema(Schema):
    name = fields.String(validate=validate.Length(1, 120))
    allowed_origins = fields.List(fields.String(validate=validate.Length(1, 255)),
                                  validate=validate.Length(max=MAX_ORIGINS))
    appearance = fields.Nested(AppearanceSchema)
    monthly_cap = fields.Integer(allow_none=True, validate=validate.Range(0, MAX_CAP))


class WidgetKeySchema(Schema):
    id = fields.UUID(required=True)
    key = fields.String(required=True, metadata={
        "description": "The publishable key: safe in a web page", "example": "pk_…"})
    name = fields.String(required=True)
    agent_id = fields.UUID(required=True)
    owner_id = fields.UUID(required=True)
    allowed_origins = fields.List(fields.String(), required=True)
    appearance = fields.Dict(required=True)
    monthly_cap = fields.Integer(allow_none=True)
    requires_license = fields.Boolean(required=True)
    revoked_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    snippet = fields.String(required=True, metadata={
        "description": "The HTML to paste into a page"})


class WidgetKeyListArgsSchema(Schema):
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 100))


class WidgetTokenRequestSchema(Schema):
    visitor_id = fields.String(required=True, validate=validate.Length(8, 64), metadata={
        "description": "A random id the page keeps for its visitor (localStorage)"})
    license_key = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(1, 500),
                                metadata={"description": "License-gated keys only"})
    fingerprint = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(1, 255),
                                metadata={"description": "The machine's fingerprint, when the "
                                                         "license's policy binds machines"})


class WidgetTokenSchema(Schema):
    token = fields.String(required=True, metadata={"example": "wt_eyJ…"})
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"example": 600})
    visitor_id = fields.String(required=True)
    license_id = fields.UUID(allow_none=True)


class WidgetChatInSchema(Schema):
    message = fields.String(required=True, validate=validate.Length(1, MAX_MESSAGE_CHARS))


class WidgetMessageSchema(Schema):
    role = fields.String(required=True, metadata={"example": "assistant"})
    content = fields.String(required=True)
    created_at = fields.AwareDateTime(required=True)


class WidgetConversationSchema(Schema):
    conversation_id = fields.UUID(allow_none=True)
    messages = fields.List(fields.Nested(WidgetMessageSchema), required=True)


class WidgetConfigSchema(Schema):
    name = fields.String(required=True)
    brand = fields.String(required=True)
    primary_color = fields.String(required=True)
    accent_color = fields.String(required=True)
    logo_url = fields.String(allow_none=True)
    greeting = fields.String(required=True)
    placeholder = fields.String(required=True)
    requires_license = fields.Boolean(required=True)
