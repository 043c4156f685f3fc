"""/api/v1/widget: widget keys (managed by their owners) and the embed endpoints a page calls.

Keys: ``/api/v1/widget/keys`` with an access token or API key (``agents:read`` to read,
``agents:write`` to change). Embed: ``/api/v1/widget/embed/{key}/…``, public, called from the
pages the key allows; CORS answers those origins only, preflight included.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, g, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from app.agents import streaming
from app.agents.config import agents_config
from app.agents.models import Execution
from app.agents.service import Caller
from app.api.pagination import page_of, paginate
from app.auth.guard import current_principal, require
from app.errors import ApiError
from app.extensions import db
from app.redis import get_redis
from app.widget import keys, service
from app.widget.models import WidgetKey
from app.widget.schemas import (
    WidgetChatInSchema,
    WidgetConfigSchema,
    WidgetConversationSchema,
    WidgetKeyInSchema,
    WidgetKeyListArgsSchema,
    WidgetKeyPatchSchema,
    WidgetKeySchema,
    WidgetTokenRequestSchema,
    WidgetTokenSchema,
)

keys_blp = Blueprint("widget_keys", __name__, description="Widget keys: publishable keys "
                     "for the chat widget, bound to an agent, an owner and allowed origins")
embed_blp = Blueprint("widget_embed", __name__, description="What the chat widget calls from "
                      "a page: its look, a short-lived token, the chat (SSE) and the thread")
_CORS_HEADERS = "Authorization, Content-Type, Last-Event-ID"


def _caller() -> Caller:
    return Caller.of(current_principal())


def shaped(key: WidgetKey) -> dict[str, Any]:
    from tenants.urls import absolute_url

    columns = {c.key: getattr(key, c.key) for c in WidgetKey.__table__.columns}
    return {**columns, "snippet": f'<script src="{absolute_url("/widget.js")}" '
                                  f'data-key="{key.key}" async></script>'}


@keys_blp.route("")
class WidgetKeys(MethodView):
    @keys_blp.arguments(WidgetKeyListArgsSchema, location="query")
    @keys_blp.response(200, page_of(WidgetKeySchema))
    @require("agents:read")
    def get(self, args):
        """Widget keys, newest first: a customer's own; a reseller's whole tenant."""
        page = paginate(keys.visible_keys(_caller()), cursor=args["cursor"],
                        limit=args["limit"], order_by=(WidgetKey.created_at, WidgetKey.id))
        return {"items": [shaped(k) for k in page.items], "next_cursor": page.next_cursor}

    @keys_blp.arguments(WidgetKeyInSchema)
    @keys_blp.response(201, WidgetKeySchema)
    @require("agents:write")
    def post(self, body):
        """Create a publishable key for one agent, with the origins (pages) that may use it.

        Its executions run as its owner (you, or with ``owner_id`` a reseller's customer),
        count against the owner's plan and the key's own ``monthly_cap``.
        """
        key = keys.create_key(_caller(), **body)
        db.session.commit()
        return shaped(key)


@keys_blp.route("/<uuid:key_id>")
class WidgetKeyItem(MethodView):
    @keys_blp.response(200, WidgetKeySchema)
    @require("agents:read")
    def get(self, key_id):
        """One widget key, with the snippet to paste into a page."""
        return shaped(keys.get_key(_caller(), key_id))

    @keys_blp.arguments(WidgetKeyPatchSchema)
    @keys_blp.response(200, WidgetKeySchema)
    @require("agents:write")
    def patch(self, body, key_id):
        """Rename, change the allowed origins, the appearance or the monthly cap. Origins
        take effect at once, for tokens already issued too."""
        key = keys.update_key(keys.get_key(_caller(), key_id), body)
        db.session.commit()
        return shaped(key)


@keys_blp.route("/<uuid:key_id>/revoke")
class WidgetKeyRevoke(MethodView):
    @keys_blp.response(200, WidgetKeySchema)
    @require("agents:write")
    def post(self, key_id):
        """Revoke: the key and every token issued for it stop working at once."""
        key = keys.revoke_key(keys.get_key(_caller(), key_id))
        db.session.commit()
        return shaped(key)


# -- embed: CORS for the key's origins only ---------------------------------------------------
@embed_blp.before_request
def _cors_gate():
    origin = request.headers.get("Origin")
    text = (request.view_args or {}).get("key", "")
    key = keys.by_text(text)
    allowed = key is not None and key.is_live and service.origin_allowed(key, origin)
    g.widget_cors_origin = origin if allowed else None
    if request.method == "OPTIONS":
        if not allowed:
            raise ApiError(403, "origin_not_allowed", "This widget key is not allowed on this "
                                                      "site.")
        return Response(status=204)
    return None


@embed_blp.after_request
def _cors_headers(response: Response) -> Response:
    origin = g.get("widget_cors_origin")
    response.headers.add("Vary", "Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "Retry-After, X-Request-ID"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
    return response


def _session() -> service.WidgetSession:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    bearer = value.strip() if scheme.lower() == "bearer" else None
    return service.authenticate(request.view_args["key"], bearer, request.headers.get("Origin"))


def _event_stream(execution: Execution, after: str = "0", intro: str = "") -> Response:
    """The execution's events as SSE (see app/agents/streaming.py), after an optional intro."""
    execution_id = execution.id
    db.session.commit()

    def finished() -> dict[str, Any] | None:
        row = db.session.get(Execution, execution_id)
        ending = ({} if row is None else streaming.end_data(row.status, row.error_code,
                                                            row.error_message)
                  if row.is_terminal else None)
        db.session.commit()
        return ending

    events = streaming.sse(str(execution_id), after,
                           heartbeat_seconds=agents_config().sse_heartbeat_seconds,
                           finished=finished)

    def body():
        if intro:
            yield intro
        yield from events

    return Response(stream_with_context(streaming.in_tenant(body())),
                    mimetype="text/event-stream", headers=streaming.SSE_HEADERS)


@embed_blp.route("/<key>/config")
class EmbedConfig(MethodView):
    @embed_blp.response(200, WidgetConfigSchema)
    def get(self, key):
        """The widget's look: the reseller's branding and the key's appearance."""
        found = service.live_key(key)
        if not g.widget_cors_origin and request.headers.get("Origin") and \
                not found.requires_license:
            raise ApiError(403, "origin_not_allowed", "This widget key is not allowed on this "
                                                      "site.")
        return service.public_config(found)


@embed_blp.route("/<key>/token")
class EmbedToken(MethodView):
    @embed_blp.arguments(WidgetTokenRequestSchema)
    @embed_blp.response(200, WidgetTokenSchema)
    @embed_blp.alt_response(403, description="`origin_not_allowed`, `widget_key_revoked`, or "
                            "for license-gated keys `license_<code>` with `license_code`")
    @embed_blp.alt_response(429, description="`rate_limited`: per visitor or per IP")
    def post(self, body, key):
        """Exchange the publishable key for a token (at most 15 minutes) bound to this page's
        origin, the key's agent and the visitor. License-gated keys also need a license key
        (and machine fingerprint) that validates VALID; otherwise the answer carries the
        license's code."""
        return service.exchange(key, request.headers.get("Origin"), body["visitor_id"],
                                request.remote_addr or "unknown", body["license_key"],
                                body["fingerprint"])


@embed_blp.route("/<key>/conversation")
class EmbedConversation(MethodView):
    @embed_blp.response(200, WidgetConversationSchema)
    def get(self, key):
        """The visitor's conversation so far (with the widget token), oldest first."""
        return service.history(_session())


@embed_blp.route("/<key>/chat")
class EmbedChat(MethodView):
    @embed_blp.arguments(WidgetChatInSchema)
    @embed_blp.response(200, description="text/event-stream: an `execution` event (its id "
                        "and conversation), then `status`, `token` and `end` events")
    @embed_blp.alt_response(429, description="`rate_limited`, or `quota_exceeded` (the key's "
                            "monthly cap or its owner's plan)")
    @embed_blp.alt_response(503, description="`service_unavailable`: the job queue is "
                            "unreachable; nothing was stored or charged")
    def post(self, body, key):
        """Send the visitor's message; the answer streams back token by token (SSE)."""
        session = _session()
        # The answer streams in this response: without Redis, a clean 503 before anything is
        # stored or charged (the rate limits below let a visitor through when Redis is down),
        # rather than a stored run whose 200 stream breaks off.
        get_redis().ping()
        execution = service.send(session, body["message"], request.remote_addr or "unknown")
        ids = {"execution_id": str(execution.id),
               "conversation_id": str(execution.conversation_id)}
        intro = f"event: execution\ndata: {json.dumps(ids)}\n\n"
        return _event_stream(execution, intro=intro)


@embed_blp.route("/<key>/executions/<uuid:execution_id>/stream")
class EmbedStream(MethodView):
    @embed_blp.response(200, description="text/event-stream, resumable with Last-Event-ID")
    def get(self, key, execution_id):
        """Resume the stream of one of this visitor's executions."""
        execution = service.widget_execution(_session(), execution_id)
        return _event_stream(execution,
                             streaming.valid_event_id(request.headers.get("Last-Event-ID")))
