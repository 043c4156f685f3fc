"""The endpoints embedded agents call: validation (public) and machines (license-key auth).

Machine endpoints authenticate with the license key itself (``Authorization: License
<key>``): an on-prem program holds a key, not a user account.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from flask import Blueprint as FlaskBlueprint
from flask import Response, g, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app import clock
from app.api.limits import limiter
from app.errors import ApiError
from app.extensions import db
from app.licensing import counters, hotpath, machines, signing
from app.licensing.models import Machine
from app.licensing.schemas import (
    ActivateMachineSchema,
    ExecutionsAnswerSchema,
    ExecutionsSchema,
    MachineSchema,
    ValidateAnswerSchema,
    ValidateRequestSchema,
)
from app.licensing.validation import DETAILS, license_view
from tenants.context import current, current_or_none

validate_blp = Blueprint("license_validation", __name__,
                         description="License key validation for embedded agents (public)")
machines_blp = Blueprint("license_machines", __name__,
                         description="Machine activation, deactivation and heartbeats "
                                     "(authenticated with the license key)")
wellknown_bp = FlaskBlueprint("license_wellknown", __name__)
VALIDATE_PATH = "/api/v1/licenses/validate"
_BUDGET_NAMES = {"key": "of this license key", "ip": "from this IP address"}


@wellknown_bp.get("/.well-known/albedo/license-keys.json")
def license_keys() -> Response:
    """The reseller's public signing keys (JWK set): what offline verifiers pin."""
    response = jsonify(signing.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@validate_blp.after_app_request
def _sign_answer(response: Response) -> Response:
    # Every answer on the validation path, errors included (422, 429, and the 405 or 415
    # that routing and the API conventions give before this blueprint is even chosen), is
    # signed: a client holding only the public key can tell a genuine answer from a forged
    # or altered one. A domain that resolves to no tenant has no key to sign with (its 404
    # is unsigned; a verifier rejects it like any unsigned answer).
    if (request.path.rstrip("/") != VALIDATE_PATH or current_or_none() is None
            or response.direct_passthrough):
        return response
    response.headers.update(g.pop("rate_limit_headers", {}))
    headers = signing.sign_response(request.method, request.path, request.host,
                                    response.get_data())
    response.headers.update(headers)
    return response


@validate_blp.route("/validate")
class Validate(MethodView):
    # Its own budgets (per key, per IP) are taken with the decision in one Redis script
    # (app/licensing/hotpath.py) instead of flask-limiter's one round trip per limit.
    decorators = [limiter.exempt]

    # Instances, not classes: webargs would build a schema per request from a class.
    @validate_blp.arguments(ValidateRequestSchema())
    @validate_blp.response(200, ValidateAnswerSchema)
    @validate_blp.alt_response(429, description="Over the per-key or per-IP budget "
                               "(ALBEDO_RATE_LIMIT_LICENSE_KEY / _IP); see Retry-After.")
    def post(self, body: dict):
        """Validate a license key on this reseller's domain.

        Public (no authentication), rate-limited per key and per IP. The answer is always
        200 with a `code` (see docs/license-keys.md for codes and their precedence) and is
        signed: headers `Date`, `Digest: SHA-256=…` and `Albedo-Signature` (Ed25519 over
        the request line, host, date and digest; keyid names the key in
        `/.well-known/albedo/license-keys.json`). The `nonce` is echoed so that a client
        can reject a replayed answer.
        """
        now = clock.now()
        outcome = hotpath.validate(current().id, body["key"], body.get("fingerprint"),
                                   body.get("product"), request.remote_addr, now)
        if outcome.refused is not None:
            raise ApiError(429, "rate_limited",
                           f"Too many validations {_BUDGET_NAMES[outcome.refused]}: the limit is "
                           f"{outcome.limit} per {hotpath.budget(outcome.refused.upper()).window}"
                           " seconds.",
                           details={"budget": outcome.refused, "limit": outcome.limit},
                           headers={"Retry-After": str(outcome.retry_after),
                                    "X-RateLimit-Limit": str(outcome.limit),
                                    "X-RateLimit-Remaining": "0"})
        g.rate_limit_headers = rate_limit_headers(outcome)
        return answer(outcome, body.get("nonce"), now)


def rate_limit_headers(outcome: hotpath.Outcome) -> dict[str, str]:
    """The budget left after an accepted validation (none when Redis could not be asked)."""
    if outcome.remaining is None:
        return {}
    return {"X-RateLimit-Limit": str(outcome.limit),
            "X-RateLimit-Remaining": str(outcome.remaining)}


def answer(outcome: hotpath.Outcome, nonce: str | None, now: datetime) -> dict:
    """The body of an accepted validation (ValidateAnswerSchema dumps it)."""
    decision = outcome.decision
    return {
        "valid": decision.code == "VALID",
        "code": decision.code,
        "detail": DETAILS[decision.code],
        "flags": decision.flags,
        "license": (license_view(decision.snapshot, now)
                    if decision.snapshot is not None else None),
        "nonce": nonce,
        "ts": now.isoformat(),
    }


def _license_from_header():
    scheme, _, key = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "license" or not key.strip():
        raise ApiError(401, "unauthenticated",
                       "Send the license key as 'Authorization: License <key>'.")
    return machines.license_for_key(key.strip())


def _machine_view(machine: Machine) -> dict:
    interval = machine.license.policy.heartbeat_interval_seconds
    return {"id": machine.id, "license_id": machine.license_id,
            "fingerprint": machine.fingerprint, "name": machine.name,
            "last_heartbeat_at": machine.last_heartbeat_at, "created_at": machine.created_at,
            "heartbeat_due_at": (machine.last_heartbeat_at + timedelta(seconds=interval)
                                 if interval else None)}


@machines_blp.route("")
class Machines(MethodView):
    @machines_blp.arguments(ActivateMachineSchema)
    @machines_blp.response(201, MachineSchema)
    def post(self, body: dict):
        """Activate a machine (a seat) for the license in `Authorization: License <key>`.

        Idempotent per fingerprint: activating a live machine again answers 200 with it.
        409 `too_many_machines` when every seat is taken by a live machine.
        """
        license_ = _license_from_header()
        machine, created = machines.activate(license_, body["fingerprint"], body["name"],
                                             request.remote_addr)
        db.session.commit()
        return _machine_view(machine), 201 if created else 200


@machines_blp.route("/<uuid:machine_id>")
class MachineItem(MethodView):
    @machines_blp.response(204)
    def delete(self, machine_id: uuid.UUID):
        """Deactivate a machine of this license, freeing its seat."""
        license_ = _license_from_header()
        machines.deactivate(machines.get_machine_of(license_, machine_id))
        db.session.commit()
        return None


@machines_blp.route("/<uuid:machine_id>/heartbeat")
class MachineHeartbeat(MethodView):
    @machines_blp.response(200, MachineSchema)
    def post(self, machine_id: uuid.UUID):
        """Record a heartbeat. 409 `heartbeat_dead` if the machine already lost its seat."""
        license_ = _license_from_header()
        machine = machines.heartbeat(machines.get_machine_of(license_, machine_id))
        db.session.commit()
        return _machine_view(machine)


@validate_blp.route("/executions")
class Executions(MethodView):
    @validate_blp.arguments(ExecutionsSchema)
    @validate_blp.response(200, ExecutionsAnswerSchema)
    def post(self, body: dict):
        """Count executions against the policy's per-period maximum (license-key auth)."""
        license_ = _license_from_header()
        policy = license_.policy
        used = counters.record_execution(license_.id, policy.execution_period_seconds,
                                         clock.now(), body["count"])
        return {"used": used, "limit": policy.max_executions_per_period,
                "period_seconds": policy.execution_period_seconds}
