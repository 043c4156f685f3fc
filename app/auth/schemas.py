from marshmallow import Schema, fields, validate

from app.api.serialization import FastDumpSchema
from app.auth.principal import SCOPES


class TokenRequestSchema(Schema):
    email = fields.Email(required=True, metadata={"example": "customer@acme.example"})
    password = fields.String(required=True, validate=validate.Length(1, 1024),
                             load_only=True, metadata={"example": "acme-customer-demo"})


class RefreshRequestSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(1, 200))


class TokenPairSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"example": 900})


class ApiKeyCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 120),
                         metadata={"example": "production widget"})
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), required=True,
                         validate=validate.Length(min=1),
                         metadata={"example": ["agents:execute", "licenses:read"]})
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True,
                                      metadata={"example": "2027-01-01T00:00:00Z"})


class ApiKeySchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"example": "ak_3f9c2a1b"})
    last_four = fields.String(required=True, metadata={"example": "x9Qz"})
    scopes = fields.List(fields.String(), required=True)
    expires_at = fields.AwareDateTime(allow_none=True)
    revoked_at = fields.AwareDateTime(allow_none=True)
    last_used_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime(required=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(required=True, metadata={
        "description": "The secret, shown this once only. Store it now.",
        "example": "ak_3f9c2a1b_…"})


class MeSchema(FastDumpSchema):
    kind = fields.String(required=True, metadata={"example": "api_key"})
    user_id = fields.UUID(required=True)
    email = fields.String(required=True)
    role = fields.String(required=True, metadata={"example": "USER"})
    scopes = fields.List(fields.String(), required=True)
    api_key_id = fields.UUID(allow_none=True)
    tenant = fields.Dict(required=True, metadata={
        "example": {"slug": "acme", "display_name": "Acme Agents"}})
