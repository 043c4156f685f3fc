"""The agents API: /api/v1/agents (builder, usage), /api/v1/executions (runs) and
/api/v1/conversations (multi-turn threads).

Handlers parse, call the services and shape the answer; the rules live in service.py,
executions.py, conversations.py and usage.py. A USER sees its own agents and its provider's
templates, and only its own executions, conversations and usage; a RESELLER its tenant.
"""

from __future__ import annotations

import re

from flask import request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from app.agents import conversations, executions, provider_settings, service, streaming, usage
from app.agents.models import AgentVersion, Conversation, Execution
from app.agents.schemas import (
    AgentInSchema,
    AgentPatchSchema,
    AgentSchema,
    ConversationDetailSchema,
    ConversationListArgsSchema,
    ConversationSchema,
    ExecutionInSchema,
    ExecutionListArgsSchema,
    ExecutionSchema,
    ProviderInSchema,
    ProviderSchema,
    PublishSchema,
    UsageArgsSchema,
    UsageSchema,
    VersionInSchema,
    VersionSchema,
)
from app.agents.service import Agent, Caller
from app.api import idempotency
from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth.guard import current_principal, require
from app.billing.limits import PLAN_LIMIT_DOC
from app.errors import ApiError
from app.extensions import db

agents_blp = Blueprint("agents", __name__, description="Agents and their versions")
executions_blp = Blueprint("executions", __name__, description="Agent executions")
conversations_blp = Blueprint("conversations", __name__,
                              description="Multi-turn conversations with agents")
MAX_WAIT_SECONDS = 60
_PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait=(\d+)")


def _caller() -> Caller:
    return Caller.of(current_principal())


def _prefer_wait() -> int:
    match = _PREFER_WAIT.search(request.headers.get("Prefer", ""))
    return min(int(match.group(1)), MAX_WAIT_SECONDS) if match else 0


@agents_blp.route("")
class Agents(MethodView):
    @agents_blp.arguments(CursorArgsSchema, location="query")
    @agents_blp.response(200, page_of(AgentSchema))
    @require("agents:read")
    def get(self, args):
        """List the agents you can see (yours and your provider's templates), newest first."""
        page = paginate(service.visible_agents(_caller()), cursor=args["cursor"],
                        limit=args["limit"], order_by=(Agent.created_at, Agent.id))
        return {"items": page.items, "next_cursor": page.next_cursor}

    @agents_blp.arguments(AgentInSchema)
    @agents_blp.response(201, AgentSchema)
    @agents_blp.alt_response(402, **PLAN_LIMIT_DOC)
    @require("agents:write")
    def post(self, body):
        """Create an agent; with ``version``, its first version is created and published."""
        agent = service.create_agent(_caller(), name=body["name"], slug=body["slug"],
                                     description=body["description"], version=body["version"])
        db.session.commit()
        return agent


@agents_blp.route("/usage")
class Usage(MethodView):
    @agents_blp.arguments(UsageArgsSchema, location="query")
    @agents_blp.response(200, UsageSchema)
    @require("agents:read")
    def get(self, args):
        """Executions, tokens and cost per UTC day over the last ``days`` days.

        ``group_by`` splits each day per customer, API key, license or agent. A customer sees
        only its own executions; a reseller its whole tenant. Days without executions are
        absent. A report rather than a list, so no cursor: ``days`` (at most 90) bounds it.
        """
        return usage.report(_caller(), args["group_by"], args["days"],
                            agent_id=args["agent_id"], customer_id=args["customer_id"])


@agents_blp.route("/provider")
class ProviderSettings(MethodView):
    @agents_blp.response(200, ProviderSchema)
    @require("agents:read", roles=("RESELLER",))
    def get(self):
        """Your own AI provider settings: whether a key is set, its last four characters and
        the base URL. The key itself is never returned."""
        return provider_settings.describe()

    @agents_blp.arguments(ProviderInSchema)
    @agents_blp.response(200, ProviderSchema)
    @require("agents:write", roles=("RESELLER",))
    def put(self, body):
        """Use your own provider key (and OpenAI-compatible base URL) for your tenant's
        executions. Stored encrypted; the change is audited without the key.

        In production the base URL must resolve to public addresses (no loopback, private
        or metadata addresses); development accepts a local server such as Ollama.
        """
        status = provider_settings.save(body["api_key"], body["base_url"])
        db.session.commit()
        return status

    @agents_blp.response(204)
    @require("agents:write", roles=("RESELLER",))
    def delete(self):
        """Forget your key: executions go back to the platform's provider (if any)."""
        provider_settings.clear()
        db.session.commit()


@agents_blp.route("/<uuid:agent_id>")
class AgentItem(MethodView):
    @agents_blp.response(200, AgentSchema)
    @require("agents:read")
    def get(self, agent_id):
        """One agent."""
        return service.get_agent(_caller(), agent_id)

    @agents_blp.arguments(AgentPatchSchema)
    @agents_blp.response(200, AgentSchema)
    @require("agents:write")
    def patch(self, body, agent_id):
        """Rename, describe, archive or reactivate an agent (versions are never edited)."""
        caller = _caller()
        agent = service.update_agent(caller, service.get_agent(caller, agent_id, for_edit=True),
                                     **body)
        db.session.commit()
        return agent

    @agents_blp.response(204)
    @require("agents:write")
    def delete(self, agent_id):
        """Delete an agent with its versions and executions."""
        caller = _caller()
        service.delete_agent(caller, service.get_agent(caller, agent_id, for_edit=True))
        db.session.commit()


@agents_blp.route("/<uuid:agent_id>/versions")
class Versions(MethodView):
    @agents_blp.arguments(CursorArgsSchema, location="query")
    @agents_blp.response(200, page_of(VersionSchema))
    @require("agents:read")
    def get(self, args, agent_id):
        """The agent's versions, newest first."""
        agent = service.get_agent(_caller(), agent_id)
        page = paginate(service.list_versions(agent), cursor=args["cursor"],
                        limit=args["limit"], order_by=(AgentVersion.created_at, AgentVersion.id))
        return {"items": page.items, "next_cursor": page.next_cursor}

    @agents_blp.arguments(VersionInSchema)
    @agents_blp.response(201, VersionSchema)
    @require("agents:write")
    def post(self, body, agent_id):
        """Create a new immutable version. It is not live until published."""
        caller = _caller()
        version = service.create_version(
            caller, service.get_agent(caller, agent_id, for_edit=True), **body)
        db.session.commit()
        return version


@agents_blp.route("/<uuid:agent_id>/versions/<number>")
class VersionItem(MethodView):
    @agents_blp.response(200, VersionSchema)
    @require("agents:read")
    def get(self, agent_id, number):
        """One version, by its number."""
        agent = service.get_agent(_caller(), agent_id)
        if not number.isdigit():  # a plain segment, so every bad value gets the envelope
            raise ApiError(404, "version_not_found", f"This agent has no version {number!r}.")
        return service.get_version(agent, int(number))


@agents_blp.route("/<uuid:agent_id>/publish")
class Publish(MethodView):
    @agents_blp.arguments(PublishSchema)
    @agents_blp.response(200, AgentSchema)
    @require("agents:write")
    def post(self, body, agent_id):
        """Publish a version: new executions use it. Rolling back is publishing an older one."""
        caller = _caller()
        agent = service.get_agent(caller, agent_id, for_edit=True)
        service.publish(caller, agent, body["version"])
        db.session.commit()
        return agent


@agents_blp.route("/<uuid:agent_id>/executions")
class Run(MethodView):
    @agents_blp.arguments(ExecutionInSchema)
    @agents_blp.response(202, ExecutionSchema)
    @agents_blp.alt_response(200, description="Finished within `Prefer: wait=N`, or an "
                                              "Idempotency-Key replay of a finished execution")
    @agents_blp.alt_response(429, description="`quota_exceeded`, with limit and reset time")
    @idempotency.honours(agents_blp)
    @require("agents:execute")
    def post(self, body, agent_id, idempotency_key=None):
        """Run the agent's published version.

        Answers 202 with the queued execution; ``Prefer: wait=N`` (N ≤ 60) waits up to N
        seconds for the outcome. An ``Idempotency-Key`` header makes a retried request return
        the same execution instead of starting another; the same key with a different body
        answers 422 ``idempotency_key_reused``. Keys are kept 24 hours. With the job queue
        unreachable the execution is stored all the same (202) and dispatched once it is back.
        """
        caller = _caller()
        agent = service.get_agent(caller, agent_id)
        execution, _created = executions.start_execution(
            caller, agent, input=body["input"], variables=body["variables"],
            conversation_id=body["conversation_id"],
            idempotency_key=idempotency_key)
        wait = _prefer_wait()
        if wait:
            execution = executions.wait_for(execution, wait)
        headers = {"Location": url_for("executions.ExecutionItem",
                                       execution_id=execution.id)}
        if wait:
            headers["Preference-Applied"] = f"wait={wait}"
        return execution, 200 if execution.is_terminal else 202, headers


@executions_blp.route("")
class Executions(MethodView):
    @executions_blp.arguments(ExecutionListArgsSchema, location="query")
    @executions_blp.response(200, page_of(ExecutionSchema))
    @require("agents:read")
    def get(self, args):
        """Executions, newest first; filter by agent, status and creation time."""
        stmt = executions.filtered(_caller(), agent_id=args["agent_id"], status=args["status"],
                                   since=args["since"], until=args["until"])
        page = paginate(stmt, cursor=args["cursor"], limit=args["limit"],
                        order_by=(Execution.created_at, Execution.id))
        return {"items": page.items, "next_cursor": page.next_cursor}


@executions_blp.route("/<uuid:execution_id>")
class ExecutionItem(MethodView):
    @executions_blp.response(200, ExecutionSchema)
    @require("agents:read")
    def get(self, execution_id):
        """One execution with its output, usage, timings and error."""
        return executions.get_execution(_caller(), execution_id)


@executions_blp.route("/<uuid:execution_id>/cancel")
class Cancel(MethodView):
    @executions_blp.response(200, ExecutionSchema)
    @require("agents:execute")
    def post(self, execution_id):
        """Cancel: a queued execution at once, a running one at its next token."""
        caller = _caller()
        return executions.cancel(caller, executions.get_execution(caller, execution_id))


@executions_blp.route("/<uuid:execution_id>/stream")
class Stream(MethodView):
    @executions_blp.doc(responses={"200": {"description": "text/event-stream of `status`, "
                                                          "`token`, `tool` and `end` events"}})
    @require("agents:read")
    def get(self, execution_id):
        """Server-Sent Events of the execution as the worker produces it.

        Events carry ids; reconnect with ``Last-Event-ID`` to resume after the last one seen.
        Comments (``: heartbeat``) keep the connection alive while nothing happens.
        """
        execution = executions.get_execution(_caller(), execution_id)
        return streaming.execution_response(execution.id, request.headers.get("Last-Event-ID"))


@conversations_blp.route("")
class Conversations(MethodView):
    @conversations_blp.arguments(ConversationListArgsSchema, location="query")
    @conversations_blp.response(200, page_of(ConversationSchema))
    @require("agents:read")
    def get(self, args):
        """Conversations, newest first; filter by agent. A customer sees its own."""
        stmt = conversations.visible_conversations(_caller(), args["agent_id"])
        page = paginate(stmt, cursor=args["cursor"], limit=args["limit"],
                        order_by=(Conversation.created_at, Conversation.id))
        return {"items": page.items, "next_cursor": page.next_cursor}


@conversations_blp.route("/<uuid:conversation_id>")
class ConversationItem(MethodView):
    @conversations_blp.response(200, ConversationDetailSchema)
    @require("agents:read")
    def get(self, conversation_id):
        """One conversation with all its messages, oldest first.

        Continue it with ``conversation_id`` in ``POST /api/v1/agents/{id}/executions``.
        """
        return conversations.with_messages(
            conversations.get_conversation(_caller(), conversation_id))

    @conversations_blp.response(204)
    @conversations_blp.alt_response(409, description="`conversation_busy`: one of its "
                                                     "executions has not finished")
    @require("agents:execute")
    def delete(self, conversation_id):
        """Delete a conversation and its messages (its executions stay, unlinked)."""
        caller = _caller()
        conversations.delete_conversation(
            caller, conversations.get_conversation(caller, conversation_id))
        db.session.commit()
