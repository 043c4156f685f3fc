"""The endpoints embedded agents call: validation (public) and machines (license-key auth).

Machine endpoints authenticate with the license key itself (``Authorization: License
<key>``): an on-prem program holds a key, not a user account.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timedelta

from flask import Blueprint as FlaskBlueprint
from flask import Response, current_app, g, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app import clock
from app.api.limits import limiter
from app.errors import ApiError
from app.extensions import db
from app.licensing import counters, files, hotpath, machines, service, signing
from app.licensing.models import Machine
from app.licensing.schemas import (
    ActivateMachineSchema,
    CheckInSchema,
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
WELL_KNOWN_PATH = "/.well-known/license-keys.json"
# Where verifiers shipped before the neutral path fetch the keys: served, not documented.
LEGACY_WELL_KNOWN_PATH = "/.well-known/albedo/license-keys.json"
_BUDGET_NAMES = {"key": "of this license key", "ip": "from this IP address"}
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@wellknown_bp.get(WELL_KNOWN_PATH)
@wellknown_bp.get(LEGACY_WELL_KNOWN_PATH, endpoint="legacy_license_keys")
def license_keys() -> Response:
    """The reseller's public signing keys (JWK set): what offline verifiers pin."""
    response = jsonify(signing.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def readable_nonce() -> str | None:
    """The request's nonce wherever it can be read: the JSON body, a form body, or the
    query string (a GET answered 405 has no body). None when none is a string of 1-128."""
    candidates: list[object] = []
    with contextlib.suppress(Exception):  # an unreadable body (too large, cut short)
        if request.mimetype in _FORM_TYPES:
            candidates.append(request.form.get("nonce"))
        else:
            data = request.get_json(force=True, silent=True)
            if isinstance(data, dict):
                candidates.append(data.get("nonce"))
    candidates.append(request.args.get("nonce"))
    return next((c for c in candidates if isinstance(c, str) and 0 < len(c) <= 128), None)


def _bind_error(response: Response) -> None:
    """An error answer echoes the request's nonce and the time, as a 200 answer does, so a
    client tells a fresh refusal from a replayed one."""
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or "error" not in body:
        return
    body["nonce"] = readable_nonce()
    body["ts"] = clock.now().isoformat()
    response.set_data(current_app.json.dumps(body, separators=(",", ":")) + "\n")


@validate_blp.after_app_request
def _sign_answer(response: Response) -> Response:
    # Every answer on the validation path, errors included (422, 429, and the 405 or 415
    # that routing and the API conventions give before this blueprint is even chosen), is
    # signed and echoes the nonce: a client holding only the public key can tell a genuine,
    # fresh answer from a forged, altered or replayed one. A domain that resolves to no
    # tenant has no key to sign with (its 404 is unsigned; a verifier rejects it like any
    # unsigned answer).
    if (request.path.rstrip("/") != VALIDATE_PATH or current_or_none() is None
            or response.direct_passthrough):
        return response
    response.headers.update(g.pop("rate_limit_headers", {}))
    if response.status_code >= 400:
        _bind_error(response)
    # A 200 was decided with keys the hot path just confirmed; an error asks Redis first.
    headers = signing.sign_response(request.method, request.path, request.host,
                                    response.get_data(), fresh=response.status_code != 200)
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

        Public (no authentication), rate-limited per key and per IP. A well-formed request
        within its budgets is answered 200 with a `code` (see the license key guide for the
        codes and their precedence); over budget 429, malformed 400/415/422. Every answer
        is signed: headers `Date`, `Digest: SHA-256=…` and `License-Signature` (Ed25519
        over the request line, host, date and digest; keyid names the key in
        `/.well-known/license-keys.json`). Every answer echoes the `nonce` and the time;
        a 200 also echoes what was validated (`scope`: the key's hash, fingerprint,
        product, policy, entitlements), which a client must compare with its request.
        """
        now = clock.now()
        outcome = hotpath.validate(current().id, body["key"], body.get("fingerprint"),
                                   body.get("product"), request.remote_addr, now,
                                   hotpath.scope_of(body))
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
        return answer(outcome, body, now)


def rate_limit_headers(outcome: hotpath.Outcome) -> dict[str, str]:
    """The budget left after an accepted validation (none when Redis could not be asked)."""
    if outcome.remaining is None:
        return {}
    return {"X-RateLimit-Limit": str(outcome.limit),
            "X-RateLimit-Remaining": str(outcome.remaining)}


def answer(outcome: hotpath.Outcome, fields: dict, now: datetime) -> dict:
    """The body of an accepted validation (ValidateAnswerSchema dumps it): the decision,
    bound to the request it answers (the key's hash, the scope asked for, the nonce)."""
    decision = outcome.decision
    entitlements = fields.get("entitlements")
    return {
        "valid": decision.code == "VALID",
        "code": decision.code,
        "detail": DETAILS[decision.code],
        "flags": decision.flags,
        "license": (license_view(decision.snapshot, now)
                    if decision.snapshot is not None else None),
        "scope": {"key_sha256": outcome.key_sha256, "fingerprint": fields.get("fingerprint"),
                  "product": fields.get("product"), "policy": fields.get("policy"),
                  "entitlements": list(entitlements) if entitlements is not None else None},
        "nonce": fields.get("nonce"),
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
            "fingerprint": machine.fingerprint, "name": machine.name, "cores": machine.cores,
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
        409 `too_many_machines` when every seat is taken by a live machine, 409
        `too_many_cores` when the machines' `cores` would pass the policy's `max_cores`.
        With `file: true` the answer carries a signed `machine_file` (offline use).
        """
        license_ = _license_from_header()
        machine, created = machines.activate(license_, body["fingerprint"], body["name"],
                                             request.remote_addr, body["cores"])
        db.session.commit()
        view = _machine_view(machine)
        if body["file"]:
            view["machine_file"] = files.machine_file(
                license_, machine, body["file_ttl"] or files.DEFAULT_TTL, body["encrypt"])
        return view, 201 if created else 200


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


@validate_blp.route("/check-in")
class CheckIn(MethodView):
    @validate_blp.response(200, CheckInSchema)
    def post(self):
        """Check in the license in `Authorization: License <key>`: policies with a check-in
        interval answer OVERDUE for a license that has not checked in within it."""
        license_ = service.check_in(_license_from_header())
        db.session.commit()
        return {"last_check_in_at": license_.last_check_in_at,
                "next_check_in_at": service.next_check_in(license_)}


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
