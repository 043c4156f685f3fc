"""Request and answer shapes of the licensing API (marshmallow)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.pagination import CursorArgsSchema


class ValidateRequestSchema(Schema):
    key = fields.String(required=True, validate=validate.Length(min=1, max=256),
                        metadata={"example": "ACME-0G8Q4…"})
    fingerprint = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=255))
    product = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    policy = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64),
                           metadata={"description": "A policy id the license must be of."})
    entitlements = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)), load_default=None,
        allow_none=True, validate=validate.Length(max=32),
        metadata={"description": "Entitlement codes the license must all have."})
    nonce = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=128),
                          metadata={"description": "Echoed in the signed answer (replay check)."})


class ValidatedScopeSchema(Schema):
    key_sha256 = fields.String(metadata={
        "description": "SHA-256 (hex) of the key as sent, without hyphens and whitespace, "
                       "upper-cased: a client checks it is the key it asked about."})
    fingerprint = fields.String(allow_none=True)
    product = fields.String(allow_none=True)
    policy = fields.String(allow_none=True)
    entitlements = fields.List(fields.String(), allow_none=True)


class ValidatedLicenseSchema(Schema):
    id = fields.String()
    status = fields.String()
    product = fields.String()
    policy = fields.String()
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
    scope = fields.Nested(ValidatedScopeSchema, metadata={
        "description": "What was validated, echoed: the key's hash and the request's scope."})
    nonce = fields.String(allow_none=True)
    ts = fields.String(metadata={"description": "Server time (ISO 8601, UTC)."})


class ActivateMachineSchema(Schema):
    fingerprint = fields.String(required=True, validate=validate.Length(min=1, max=255))
    name = fields.String(load_default="", validate=validate.Length(max=120))
    cores = fields.Integer(load_default=None, allow_none=True,
                           validate=validate.Range(min=1, max=65_536),
                           metadata={"description": "CPU cores of the machine (TOO_MANY_CORES)."})
    file = fields.Boolean(load_default=False, metadata={
        "description": "Also answer a signed machine file (`machine_file`)."})
    file_ttl = fields.Integer(load_default=None, allow_none=True,
                              validate=validate.Range(min=3600, max=366 * 86400))
    encrypt = fields.Boolean(load_default=False, metadata={
        "description": "Encrypt the machine file with a key derived from the license key "
                       "and the fingerprint."})


class MachineSchema(Schema):
    id = fields.UUID()
    license_id = fields.UUID()
    fingerprint = fields.String()
    name = fields.String()
    last_heartbeat_at = fields.DateTime()
    heartbeat_due_at = fields.DateTime(allow_none=True)
    cores = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    machine_file = fields.String(allow_none=True, metadata={
        "description": "Asked for with `file`: the signed machine file (docs/license-keys.md)."})


class LicenseFileRequestSchema(Schema):
    ttl = fields.Integer(load_default=30 * 86400, validate=validate.Range(min=3600,
                                                                         max=366 * 86400),
                         metadata={"description": "Seconds the file is valid offline."})
    encrypt = fields.Boolean(load_default=False, metadata={
        "description": "Encrypt the file with a key derived from the license key."})


class LicenseFileSchema(Schema):
    certificate = fields.String(metadata={"description": "The signed license file."})
    issued_at = fields.String(metadata={"description": "ISO 8601, as in the file."})
    expires_at = fields.String(metadata={"description": "Issue time + TTL (ISO 8601)."})
    ttl = fields.Integer()


class CheckInSchema(Schema):
    last_check_in_at = fields.DateTime()
    next_check_in_at = fields.DateTime(allow_none=True)


class ExecutionsSchema(Schema):
    count = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1000))


class ExecutionsAnswerSchema(Schema):
    used = fields.Integer()
    limit = fields.Integer(allow_none=True)
    period_seconds = fields.Integer()


# --- management API (resellers; customers read their own licenses) -----------------------

class ProductSchema(Schema):
    id = fields.UUID(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    code = fields.String(required=True, validate=validate.Length(min=1, max=64),
                         metadata={"description": "The `product` scope agents validate with."})
    agent_ids = fields.List(fields.String(), load_default=list)
    entitlements = fields.List(fields.String(validate=validate.Length(max=64)),
                               load_default=list)
    created_at = fields.DateTime(dump_only=True)


class PolicySchema(Schema):
    id = fields.UUID(dump_only=True)
    product_id = fields.UUID(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    duration_days = fields.Integer(load_default=None, allow_none=True,
                                   validate=validate.Range(min=1, max=36_500))
    expiry_strategy = fields.String(load_default="restrict",
                                    validate=validate.OneOf(["restrict", "allow"]))
    grace_period_seconds = fields.Integer(load_default=0,
                                          validate=validate.Range(min=0, max=366 * 86400))
    max_machines = fields.Integer(load_default=None, allow_none=True,
                                  validate=validate.Range(min=1, max=1_000_000))
    floating = fields.Boolean(load_default=False)
    heartbeat_interval_seconds = fields.Integer(load_default=None, allow_none=True,
                                                validate=validate.Range(min=1, max=366 * 86400))
    max_executions_per_period = fields.Integer(load_default=None, allow_none=True,
                                               validate=validate.Range(min=1, max=2_147_483_647))
    execution_period_seconds = fields.Integer(load_default=30 * 24 * 3600,
                                              validate=validate.Range(min=60, max=366 * 86400))
    fingerprint_required = fields.Boolean(load_default=False)
    entitlements = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                               load_default=list, validate=validate.Length(max=100))
    require_heartbeat = fields.Boolean(load_default=False)
    check_in_interval_seconds = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=60, max=366 * 86400))
    max_cores = fields.Integer(load_default=None, allow_none=True,
                               validate=validate.Range(min=1, max=1_000_000))
    created_at = fields.DateTime(dump_only=True)


class PolicyUpdateSchema(PolicySchema):
    class Meta:
        exclude = ("product_id",)


class LicenseSchema(Schema):
    id = fields.UUID()
    key = fields.String()
    kid = fields.String()
    name = fields.String()
    status = fields.String()
    product_id = fields.UUID()
    policy_id = fields.UUID()
    expires_at = fields.DateTime(allow_none=True)
    customer_email = fields.String(allow_none=True)
    owner_id = fields.UUID(allow_none=True)
    validation_count = fields.Integer()
    last_validated_at = fields.DateTime(allow_none=True)
    entitlements = fields.List(fields.String())
    last_check_in_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class LicenseCreateSchema(Schema):
    policy_id = fields.UUID(required=True)
    name = fields.String(load_default="", validate=validate.Length(max=120))
    customer_email = fields.Email(load_default=None, allow_none=True)
    owner_id = fields.UUID(load_default=None, allow_none=True)
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True)
    entitlements = fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                               load_default=list, validate=validate.Length(max=100))


class LicenseSearchSchema(CursorArgsSchema):
    q = fields.String(load_default=None, metadata={
        "description": "Matches name, customer email, the exact key or the license id."})
    status = fields.String(load_default=None,
                           validate=validate.OneOf(["active", "suspended", "revoked"]))
    product_id = fields.UUID(load_default=None)


class ExtendSchema(Schema):
    expires_at = fields.AwareDateTime(required=True, allow_none=True, metadata={
        "description": "The new expiry; null makes the license perpetual."})


class AttachSchema(Schema):
    customer_email = fields.Email(required=True, allow_none=True)


class BulkIssueCreateSchema(Schema):
    policy_id = fields.UUID(required=True)
    count = fields.Integer(required=True, validate=validate.Range(1, 10_000))
    name_prefix = fields.String(load_default="", validate=validate.Length(max=80))


class BulkIssueSchema(Schema):
    id = fields.UUID()
    policy_id = fields.UUID()
    requested = fields.Integer()
    issued = fields.Integer()
    status = fields.String()
    progress = fields.Float()
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    csv_url = fields.String(allow_none=True)


class ValidationRecordSchema(Schema):
    id = fields.UUID()
    license_id = fields.UUID(allow_none=True)
    code = fields.String()
    fingerprint = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    validated_at = fields.DateTime()
