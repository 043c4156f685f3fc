"""The one error envelope, for every non-2xx answer under /api:

    {"error": {"code": "snake_case", "message": "…", "details": {…}, "request_id": "…"}}

Pages get an HTML error page in the tenant's branding instead. Never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Codes for werkzeug's HTTP errors when nothing more specific was raised.
_HTTP_CODES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("unauthenticated", "Authentication is required."),
    403: ("forbidden", "You are not allowed to do this."),
    404: ("not_found", "Nothing was found at this address."),
    405: ("method_not_allowed", "This method is not allowed here."),
    406: ("not_acceptable", "No acceptable representation is available."),
    409: ("conflict", "The request conflicts with the current state."),
    410: ("gone", "This resource is gone."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send the body as application/json."),
    422: ("validation_failed", "The request body or parameters are invalid."),
    428: ("precondition_required", "A precondition header is required."),
    429: ("rate_limited", "Too many requests; slow down."),
    500: ("internal_error", "Something went wrong on our side."),
    503: ("unavailable", "The service is temporarily unavailable."),
}


class ApiError(Exception):
    """Raise from services or handlers to answer a clear error."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/api" or (
        request.accept_mimetypes.best == "application/json")


def envelope(status: int, code: str, message: str, details: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {},
                      "request_id": g.get("request_id")}}
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _page(status: int, code: str, message: str) -> Response:
    try:
        html = render_template("errors/error.html", status=status, code=code, message=message)
    except Exception:  # the error page itself must never fail
        log.exception("error page failed to render")
        html = f"<h1>{status}</h1><p>{message}</p>"
    return Response(html, status=status, mimetype="text/html")


def respond(status: int, code: str, message: str, details: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    g.error_code = code  # counted by app/ops (metrics, the system page's recent errors)
    if wants_json():
        return envelope(status, code, message, details, headers)
    response = _page(status, code, message)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _validation_details(error: HTTPException) -> dict[str, Any]:
    # flask-smorest / webargs put marshmallow's per-field messages here.
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if not messages:
        return {}
    # {"json": {"field": ["msg"]}} → {"fields": {"field": ["msg"]}, "location": "json"}
    if len(messages) == 1:
        location, fields = next(iter(messages.items()))
        return {"location": location, "fields": fields}
    return {"fields": messages}


def _is_bad_json(error: HTTPException) -> bool:
    # webargs (flask-smorest) says so in its messages; Flask's get_json() in its description.
    data = getattr(error, "data", None) or {}
    if isinstance(data, dict) and "Invalid JSON body." in str(data.get("messages", "")):
        return True
    return "JSON" in str(error.description or "")


def handle_api_error(error: ApiError) -> Response:
    return respond(error.status, error.code, error.message, error.details, error.headers)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    code, message = _HTTP_CODES.get(status, ("http_error", error.name))
    details: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if status == 405 and getattr(error, "valid_methods", None):
        details["allowed_methods"] = sorted(error.valid_methods)
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if status == 422:
        details = _validation_details(error)
    elif status == 400 and _is_bad_json(error):
        code, message = "malformed_json", "The request body is not valid JSON."
    if status == 429:
        code = "rate_limited"
        message = f"Too many requests: the limit is {error.description}."
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
    response = respond(status, code, message, details, headers)
    if status == 429 and hasattr(error, "get_headers"):
        # flask-limiter's own headers (X-RateLimit-*, Retry-After) survive the envelope.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers.setdefault(name, value)
    return response


def handle_unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    if isinstance(error, (RedisConnectionError, RedisTimeoutError)):
        # Redis was needed before anything was committed (the request's transaction is
        # dropped with it): a clean, retryable 503 rather than a 500. Work stored *before*
        # Redis failed is not lost: the recovery sweep dispatches it (jobs/durable.py).
        log.warning("Redis unreachable during a request", exc_info=True)
        response = respond(503, "service_unavailable", "A service this request needs is "
                           "briefly unavailable; nothing was done. Try again shortly.")
        response.headers["Retry-After"] = "5"
        return response
    log.exception("unhandled error")
    from app.ops.failures import note_unexpected

    note_unexpected(error)
    return respond(500, "internal_error", _HTTP_CODES[500][1])


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    # Registered after flask-smorest's Api.init_app, so this replaces its handler.
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
