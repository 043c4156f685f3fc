"""The endpoints embedded agents call: validation (public) and machines (license-key auth).

Machine endpoints authenticate with the license key itself (``Authorization: License
<key>``): an on-prem program holds a key, not a user account.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from flask import Blueprint as FlaskBlueprint
from flask import Response, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app import clock
from app.api.limits import client_ip, limiter
from app.errors import ApiError
from app.extensions import db
from app.licensing import counters, machines, signing
from app.licensing.models import Machine
from app.licensing.schemas import (
    ActivateMachineSchema,
    ExecutionsAnswerSchema,
    ExecutionsSchema,
    MachineSchema,
    ValidateAnswerSchema,
    ValidateRequestSchema,
)
from app.licensing.validation import DETAILS, decide, license_view
from tenants.context import current, current_or_none

validate_blp = Blueprint("license_validation", __name__,
                         description="License key validation for embedded agents (public)")
machines_blp = Blueprint("license_machines", __name__,
                         description="Machine activation, deactivation and heartbeats "
                                     "(authenticated with the license key)")
wellknown_bp = FlaskBlueprint("license_wellknown", __name__)
VALIDATE_PATH = "/api/v1/licenses/validate"


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
    headers = signing.sign_response(request.method, request.path, request.host,
                                    response.get_data())
    response.headers.update(headers)
    return response


def _client_ip() -> str | None:
    return request.remote_addr


# Validation has its own budgets instead of the API defaults: per key (one leaked key cannot
# hammer the endpoint) and per IP (one host cannot probe many keys). Configurable with
# ALBEDO_RATE_LIMIT_LICENSE_KEY and ALBEDO_RATE_LIMIT_LICENSE_IP.
_LIMIT_DEFAULTS = {"KEY": "120/minute", "IP": "600/minute"}


def _validation_limit(name: str) -> str:
    from flask import current_app

    extra = current_app.extensions["albedo.settings"].extra
    return extra.get(f"ALBEDO_RATE_LIMIT_LICENSE_{name}", _LIMIT_DEFAULTS[name])


def _key_bucket() -> str:
    body = request.get_json(silent=True)
    key = body.get("key") if isinstance(body, dict) else None
    normalised = str(key or "").strip().upper().replace("-", "").replace(" ", "")
    # A hash: keys do not sit in Redis in clear.
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


@validate_blp.route("/validate")
class Validate(MethodView):
    decorators = [
        limiter.limit(lambda: _validation_limit("KEY"), key_func=_key_bucket,
                      scope="license-key"),
        limiter.limit(lambda: _validation_limit("IP"), key_func=client_ip, scope="license-ip"),
    ]

    @validate_blp.arguments(ValidateRequestSchema)
    @validate_blp.response(200, ValidateAnswerSchema)
    def post(self, body: dict):
        """Validate a license key on this reseller's domain.

        Public (no authentication). The answer is always 200 with a `code` (see
        docs/license-keys.md for codes and their precedence) and is signed: headers `Date`,
        `Digest: SHA-256=…` and `Albedo-Signature` (Ed25519 over the request line, host,
        date and digest; keyid names the key in `/.well-known/albedo/license-keys.json`).
        The `nonce` is echoed so that a client can reject a replayed answer.
        """
        now = clock.now()
        result = decide(body["key"], body.get("fingerprint"), body.get("product"), now)
        license_ = result.license
        counters.record(current().id, license_.id if license_ else None, result.code,
                        body.get("fingerprint"), _client_ip(), now)
        return {
            "valid": result.code == "VALID",
            "code": result.code,
            "detail": DETAILS[result.code],
            "flags": result.flags,
            "license": license_view(license_, now) if license_ is not None else None,
            "nonce": body.get("nonce"),
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
                                             _client_ip())
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
