"""Request rules every /api endpoint shares, enforced before any handler runs."""

from __future__ import annotations

from flask import Flask, request

from app.errors import ApiError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Endpoints that receive someone else's format (e.g. Stripe's webhook posts raw JSON with its
# own content type rules) opt out by path prefix.
RAW_BODY_PATHS: set[str] = set()


def init_app(app: Flask) -> None:
    @app.before_request
    def _json_bodies_only() -> None:
        if not request.path.startswith("/api/") or request.method not in _BODY_METHODS:
            return
        if any(request.path.startswith(p) for p in RAW_BODY_PATHS):
            return
        has_body = (request.content_length or 0) > 0 or request.headers.get(
            "Transfer-Encoding", "").lower() == "chunked"
        if has_body and request.mimetype != "application/json" and not request.mimetype.endswith(
                "+json"):
            raise ApiError(415, "unsupported_media_type",
                           "Send the request body as JSON (Content-Type: application/json).",
                           {"received": request.mimetype or None})
