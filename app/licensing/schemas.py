"""Request and answer shapes of the licensing API (marshmallow)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class ValidateRequestSchema(Schema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=256),
                        metadata={"example": "ACME-0G8Q4…"})
    fingerprint = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=255))
    product = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    nonce = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=128),
                          metadata={"description": "Echoed in the signed answer (replay check)."})


class ValidatedLicenseSchema(Schema):
    id = fields.String()
    status = fields.String()
    product = fields.String()
    entitlements = fields.List(fields.String())
    expires_at = fields.String(allow_none=True)
    expiry_strategy = fields.String()
    grace_period_seconds = fields.Integer()
    max_machines = fields.Integer(allow_none=True)
    heartbeat_interval_seconds = fields.Integer(allow_none=True)
    max_executions_per_period = fields.Integer(allow_none=True)


class ValidateAnswerSchema(Schema):
    valid = fields.Boolean()
    code = fields.String(metadata={"example": "VALID"})
    detail = fields.String()
    flags = fields.Dict()
    license = fields.Nested(ValidatedLicenseSchema, allow_none=True)
    nonce = fields.String(allow_none=True)
    ts = fields.String(metadata={"description": "Server time (ISO 8601, UTC)."})


class ActivateMachineSchema(Schema):
    fingerprint = fields.String(required=True, validate=validate.Length(min=1, max=255))
    name = fields.String(load_default="", validate=validate.Length(max=120))


class MachineSchema(Schema):
    id = fields.UUID()
    license_id = fields.UUID()
    fingerprint = fields.String()
    name = fields.String()
    last_heartbeat_at = fields.DateTime()
    heartbeat_due_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class ExecutionsSchema(Schema):
    count = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1000))


class ExecutionsAnswerSchema(Schema):
    used = fields.Integer()
    limit = fields.Integer(allow_none=True)
    period_seconds = fields.Integer()
