"""The agents feature's reads in the read lane (app/api/lane): the agents page, one agent
and the conversations page, from the same statements and schemas as the routes in
app/agents/api.py."""

from __future__ import annotations

from app.agents import conversations, service
from app.agents.models import Agent, Conversation
from app.agents.schemas import AgentSchema, ConversationSchema
from app.agents.service import Caller
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
