"""``/api/v1/platform/system``: the system page's figures and its actions, for ADMINs on the
platform domain."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.auth.guard import require
from app.ops import system

blp = Blueprint("platform_system", __name__,
                description="Platform operators: queues, workers, failed work, errors, usage")
ADMIN = ("ADMIN",)


class QueueSchema(Schema):
    name = fields.String()
    depth = fields.Integer()
    oldest_age_seconds = fields.Float()
    started = fields.Integer()
    scheduled = fields.Integer()
    failed = fields.Integer()


class WorkerSchema(Schema):
    name = fields.String()
    state = fields.String()
    queues = fields.List(fields.String())
    current_job = fields.String(allow_none=True)
    current_task = fields.String(allow_none=True)
    last_heartbeat = fields.DateTime(allow_none=True)
    successful_jobs = fields.Integer()
    failed_jobs = fields.Integer()


class FailedUnitSchema(Schema):
    kind = fields.String(metadata={"enum": list(system.KINDS)})
    id = fields.String()
    tenant = fields.String(allow_none=True, metadata={"description": "The tenant's slug."})
    what = fields.String()
    error = fields.String()
    failed_at = fields.DateTime(allow_none=True)


class ErrorCountSchema(Schema):
    code = fields.String()
    count = fields.Integer()


class TenantUsageSchema(Schema):
    slug = fields.String()
    name = fields.String()
    executions = fields.Integer()
    tokens = fields.Integer()
    cost_usd = fields.Float()


class SystemSchema(Schema):
    queues = fields.List(fields.Nested(QueueSchema))
    workers = fields.List(fields.Nested(WorkerSchema))
    failed_units = fields.List(fields.Nested(FailedUnitSchema))
    recent_errors = fields.List(fields.Nested(ErrorCountSchema),
                                metadata={"description": "Error answers by code, last hour."})
    top_tenants = fields.List(fields.Nested(TenantUsageSchema),
                              metadata={"description": "By executions, last 30 days."})
    redis_error = fields.String(allow_none=True)
    generated_at = fields.AwareDateTime()


class UnitPathSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(system.KINDS))


@blp.route("")
class System(MethodView):
    @blp.response(200, SystemSchema)
    @require(roles=ADMIN)
    def get(self):
        """Queues (depth, oldest job's age), workers and their jobs, failed units, error
        answers by code over the last hour, and the tenants using the most."""
        return system.overview()


@blp.route("/failed/<any(job, email, delivery, execution):kind>/<string:unit_id>/"
           "<any(retry, discard):action>")
class FailedUnit(MethodView):
    @blp.response(204)
    @require(roles=ADMIN)
    def post(self, kind: str, unit_id: str, action: str):
        """Retry a failed unit, or discard it (an RQ job is deleted; an email, delivery or
        execution is dismissed from the list, its row kept as its tenant's history).
        Audited."""
        (system.retry if action == "retry" else system.discard)(kind, unit_id[:64])
