"""The validation lane: a WSGI layer that answers the common validation without Flask's
request pipeline.

Embedded agents call ``POST /api/v1/licenses/validate`` far more often than anything else,
and the answer itself is cheap (a cached snapshot, one Redis script, one signature). Flask's
pipeline around it — the request context, every app-wide hook, flask-limiter filtering a
route it then exempts, webargs, the session — cost more than the validation.

The lane answers a well-formed validation (POST, a JSON body the request schema accepts, on
the host of an active tenant) with the very parts the Flask route uses: the hot path, the
answer and its schema, the rate-limit headers, the signature and the request id. Everything
else — bad input, a known tenant's suspension, an unknown host, a request over budget, an
error — goes on to the Flask route unchanged, which stays the reference (and the OpenAPI
documentation) for those answers. A request over budget took nothing from the budgets, so
the route answers its 429 without counting it twice.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable

from flask import Flask, g
from marshmallow import ValidationError
from werkzeug.http import parse_options_header
from werkzeug.wsgi import get_host

from app import clock, logs
from app.licensing import hotpath, signing
from app.licensing.public_api import VALIDATE_PATH, answer, rate_limit_headers
from app.licensing.schemas import ValidateRequestSchema
from tenants.context import TenantInfo, activate
from tenants.hosts import normalise_host

log = logging.getLogger(__name__)

# A valid body is well under 1 KB (the schema's lengths); a larger one is the route's to refuse.
_MAX_BODY = 8192

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class ValidationLane:
    def __init__(self, app: Flask, wsgi_app: WSGIApp):
        self.app = app
        self.next = wsgi_app
        self._request_schema = ValidateRequestSchema()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != VALIDATE_PATH:
            return self.next(environ, start_response)
        body = _json_body(environ)
        if body is None:
            return self.next(environ, start_response)
        try:
            handled = self._answer(environ, body)
        except Exception:
            # A bug, not a client's mistake: the route answers it (its 500 envelope), and the
            # log says the lane failed first.
            log.exception("validation lane failed; the Flask route answers instead")
            handled = None
        if handled is not None:
            payload, headers = handled
            start_response("200 OK", headers)
            return [payload]
        environ["wsgi.input"] = io.BytesIO(body)  # the route reads the body again
        return self.next(environ, start_response)

    def _answer(self, environ: dict, body: bytes) -> tuple[bytes, list] | None:
        with self.app.app_context():
            host = get_host(environ, self.app.config.get("TRUSTED_HOSTS"))
            normalised = normalise_host(host)
            tenant = self.app.extensions["albedo.tenant_resolver"].resolve(normalised) \
                if normalised else None
            if tenant is None or not tenant.is_active:
                return None
            try:
                fields = self._request_schema.load(json.loads(body))
            except (ValueError, ValidationError):
                return None
            with activate(tenant):
                return self._validate(environ, tenant, host, fields)

    def _validate(self, environ: dict, tenant: TenantInfo, host: str,
                  fields: dict) -> tuple[bytes, list] | None:
        g.request_id = logs.request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        now = clock.now()
        outcome = hotpath.validate(tenant.id, fields["key"], fields["fingerprint"],
                                   fields["product"], environ.get("REMOTE_ADDR"), now,
                                   hotpath.scope_of(fields))
        if outcome.refused is not None:
            return None
        # The answer schema dumps this dict unchanged (a test compares the lane's answers
        # with the route's), so the lane serialises it directly, compact as Flask does.
        payload = (self.app.json.dumps(answer(outcome, fields, now),
                                       separators=(",", ":")) + "\n").encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(payload)),
                   "X-Request-ID": g.request_id, **rate_limit_headers(outcome),
                   **signing.sign_response("POST", VALIDATE_PATH, host, payload)}
        return payload, list(headers.items())


def _json_body(environ: dict) -> bytes | None:
    """The request's JSON body when it is small, whole and declared as JSON; else None."""
    mimetype = parse_options_header(environ.get("CONTENT_TYPE", ""))[0].lower()
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        return None
    if environ.get("HTTP_TRANSFER_ENCODING"):
        return None
    length = environ.get("CONTENT_LENGTH", "")
    if not length.isdigit() or not 0 < int(length) <= _MAX_BODY:
        return None
    body = environ["wsgi.input"].read(int(length))
    if len(body) != int(length):
        environ["wsgi.input"] = io.BytesIO(body)
        return None
    return body
