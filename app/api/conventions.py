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
        if has_body and _has_nul(request.get_json(silent=True)):
            raise _nul_refused("body")

    @app.before_request
    def _no_nul_in_query() -> None:
        if request.path.startswith("/api/") and any(
                "\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)):
            raise _nul_refused("query")


def _nul_refused(where: str) -> ApiError:
    # PostgreSQL's text cannot hold NUL (it answered 500); no name, key or prompt needs one.
    return ApiError(422, "invalid_text", "Text may not contain NUL (\\u0000) characters.",
                    {"in": where})


def _has_nul(value, depth: int = 0) -> bool:
    """Whether a NUL character is anywhere in parsed JSON (keys included)."""
    if depth > 64:
        return False
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v, depth + 1) for v in value)
    return False
