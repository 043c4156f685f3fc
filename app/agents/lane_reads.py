"""The agents feature's reads in the read lane (app/api/lane): the agents page and one
agent, from the same statements and schema as the routes in app/agents/api.py."""

from __future__ import annotations

from app.agents import service
from app.agents.models import Agent
from app.agents.schemas import AgentSchema
from app.agents.service import Caller
from app.api.lane.routes import item_route, page_route

page_route("/api/v1/agents", scopes=("agents:read",), schema=AgentSchema,
           statement=lambda principal: service.visible_agents(Caller.of(principal)),
           order_by=(Agent.created_at, Agent.id))
item_route("/api/v1/agents/<uuid:agent_id>", scopes=("agents:read",), schema=AgentSchema,
           statement=lambda principal, agent_id: service.agent_by_id(Caller.of(principal),
                                                                    agent_id))
