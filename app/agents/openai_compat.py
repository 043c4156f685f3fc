"""An OpenAI-compatible endpoint: ``POST /api/v1/openai/chat/completions`` with model = agent slug.

So that the official ``openai`` SDK and LangChain's ChatOpenAI can call an agent with
``base_url=https://<tenant domain>/api/v1/openai`` and an API key. The agent's published
version decides the real model, system prompt and tools; the client's earlier messages become
the conversation history (trimmed to the context like any other), its last user message the
input. Runs go through the same queue, quotas and usage accounting as every execution.
With Redis unreachable the endpoint answers 503 ``service_unavailable`` and stores nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields

from app.agents import executions, service, streaming
from app.agents.config import agents_config
from app.agents.models import Execution
from app.agents.service import Caller
from app.auth.guard import current_principal, require
from app.errors import ApiError
from app.extensions import db
from app.redis import get_redis

blp = Blueprint("openai", __name__, description="OpenAI-compatible chat completions")
# Failed executions as HTTP statuses an OpenAI client understands (and may retry on).
_STATUS_FOR = {"provider_rate_limited": 429, "provider_auth_failed": 502,
               "provider_unavailable": 502, "provider_timeout": 504,
               "execution_timeout": 504, "context_too_long": 400, "cancelled": 409}


class ChatRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE  # OpenAI clients send fields we ignore (n, top_p, user…)

    model = fields.String(required=True, metadata={"description": "The agent's slug"})
    messages = fields.List(fields.Dict(), required=True)
    stream = fields.Boolean(load_default=False)
    stream_options = fields.Dict(load_default=None, allow_none=True)
    variables = fields.Dict(load_default=dict, metadata={
        "description": "Prompt variables (with the SDK: extra_body={'variables': …})"})


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _split(messages: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], str]:
    turns = [(m.get("role"), _text(m.get("content"))) for m in messages]
    turns = [(role, text) for role, text in turns if role in ("user", "assistant") and text]
    if not turns or turns[-1][0] != "user":
        raise ApiError(422, "invalid_messages", "The last message must be a user message.")
    return turns[:-1], turns[-1][1]


def _usage(execution: Execution) -> dict[str, int]:
    return {"prompt_tokens": execution.prompt_tokens,
            "completion_tokens": execution.completion_tokens,
            "total_tokens": execution.prompt_tokens + execution.completion_tokens}


def _raise_failure(execution: Execution) -> None:
    if execution.status == "succeeded":
        return
    code = execution.error_code or execution.status
    raise ApiError(_STATUS_FOR.get(code, 502), code,
                   execution.error_message or f"The execution ended {execution.status}.",
                   details={"execution_id": str(execution.id)})


def _completion(execution: Execution, slug: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{execution.id.hex}", "object": "chat.completion",
            "created": int(execution.created_at.timestamp()), "model": slug,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": execution.output}}],
            "usage": _usage(execution)}


def _chunks(execution_id: str, slug: str, created: int, include_usage: bool) -> Iterator[str]:
    base = {"id": f"chatcmpl-{execution_id.replace('-', '')}",
            "object": "chat.completion.chunk", "created": created, "model": slug}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    config = agents_config()
    deadline = time.monotonic() + config.timeout_seconds + 60
    # Same heartbeat as the execution streams; the process's stream hub does the waiting.
    for events in streaming.follow(execution_id, "0", config.sse_heartbeat_seconds,
                                   deadline - time.monotonic()):
        if events is None:
            yield ": heartbeat\n\n"
            continue
        for _event_id, kind, data in events:
            if kind == "token":
                yield chunk({"content": data["text"]})
            elif kind == "end":
                if data.get("status") != "succeeded":
                    error = data.get("error") or {"code": data.get("status"),
                                                  "message": "The execution did not finish."}
                    yield f"data: {json.dumps({'error': error})}\n\n"
                    return
                yield chunk({}, "stop")
                if include_usage:
                    row = db.session.get(Execution, uuid.UUID(execution_id))
                    yield f"data: {json.dumps({**base, 'choices': [], 'usage': _usage(row)})}\n\n"
                yield "data: [DONE]\n\n"
                return


@blp.route("/chat/completions")
class ChatCompletions(MethodView):
    @blp.arguments(ChatRequestSchema)
    @blp.response(200)
    @require("agents:execute")
    def post(self, body):
        """Run the agent named by ``model`` (its slug), streaming or not, the OpenAI way."""
        caller = Caller.of(current_principal())
        agent = service.get_agent_by_slug(caller, body["model"])
        history, text = _split(body["messages"])
        # The OpenAI protocol answers in this response, so the answer needs the job queue and
        # the execution's stream now. Without Redis: 503 before anything is stored or charged
        # (the SDK retries it), never an execution that runs later for nobody after a 504.
        get_redis().ping()
        execution, _ = executions.start_execution(caller, agent, input=text,
                                                  variables=body["variables"],
                                                  history=history, source="openai")
        if body["stream"]:
            include_usage = bool((body["stream_options"] or {}).get("include_usage"))
            stream = _chunks(str(execution.id), agent.slug,
                             int(execution.created_at.timestamp()), include_usage)
            return Response(stream_with_context(streaming.in_tenant(stream)),
                            mimetype="text/event-stream", headers=streaming.SSE_HEADERS)
        execution = executions.wait_for(execution, agents_config().timeout_seconds + 30)
        if not execution.is_terminal:
            raise ApiError(504, "execution_timeout", "The agent did not answer in time.",
                           details={"execution_id": str(execution.id)})
        _raise_failure(execution)
        return _completion(execution, agent.slug)


@blp.route("/models")
class Models(MethodView):
    @blp.response(200)
    @require("agents:read")
    def get(self):
        """The agents you may call, as OpenAI models (id = slug)."""
        agents = db.session.scalars(service.visible_agents(Caller.of(current_principal()))
                                    .where(service.Agent.published_version.is_not(None)))
        return {"object": "list", "data": [
            {"id": a.slug, "object": "model", "created": int(a.created_at.timestamp()),
             "owned_by": "agent"} for a in agents]}
