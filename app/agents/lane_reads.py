"""The agents feature's reads in the read lane (app/api/lane): the agents page, one agent
and the conversations page, from the same statements and schemas as the routes in
app/agents/api.py."""

from __future__ import annotations

from app import clock
from app.agents import conversations, service
from app.agents.models import Agent, Conversation
from app.agents.schemas import AgentSchema, ConversationSchema
from app.agents.service import Caller
from app.api.lane.remembered import remembered_route
from app.api.lane.routes import item_route, page_route

page_route("/api/v1/agents", scopes=("agents:read",), schema=AgentSchema,
           statement=lambda principal: service.visible_agents(Caller.of(principal)),
           order_by=(Agent.created_at, Agent.id))
item_route("/api/v1/agents/<uuid:agent_id>", scopes=("agents:read",), schema=AgentSchema,
           statement=lambda principal, agent_id: service.agent_by_id(Caller.of(principal),
                                                                    agent_id))
page_route("/api/v1/conversations", scopes=("agents:read",), schema=ConversationSchema,
           statement=lambda principal, agent_id: conversations.visible_conversations(
               Caller.of(principal), agent_id),
           order_by=(Conversation.created_at, Conversation.id), uuid_filters=("agent_id",))

# The reads the route answers and the lane remembers (app/api/lane/remembered.py).
remembered_route("/api/v1/agents/<uuid:agent_id>/versions", tables=("agents", "agent_versions"))
remembered_route("/api/v1/agents/<uuid:agent_id>/versions/<number>",
                 tables=("agents", "agent_versions"))
remembered_route("/api/v1/agents/provider", tables=("agent_provider_settings",))
# A window of whole UTC days up to now: it moves at midnight.
remembered_route("/api/v1/agents/usage", tables=("agent_executions", "agents", "users"),
                 moves_at=clock.next_day)
remembered_route("/api/v1/executions", tables=("agent_executions",))
remembered_route("/api/v1/executions/<uuid:execution_id>", tables=("agent_executions",))
remembered_route("/api/v1/conversations/<uuid:conversation_id>",
                 tables=("agent_conversations", "agent_messages"))
remembered_route("/api/v1/openai/models", tables=("agents",))
