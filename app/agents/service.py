"""The agent builder: agents, immutable versions, publish and roll back, who sees what.

Object rules (inside a tenant; the ORM guard already keeps tenants apart):
a USER sees and edits only the agents it owns, and may also read and run its reseller's
templates; a RESELLER sees and edits every agent of its tenant, and the agents it creates are
templates for its customers.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select

from app import clock
from app.agents import templating
from app.agents.models import Agent, AgentVersion
from app.billing.limits import ensure_room
from app.errors import ApiError
from app.extensions import db


@dataclass(frozen=True)
class Caller:
    """Who acts: a signed-in user, or an API key (or license) acting for its owning user."""

    user_id: uuid.UUID
    role: str
    api_key_id: uuid.UUID | None = None
    license_id: uuid.UUID | None = None

    @classmethod
    def of(cls, principal: Any) -> Caller:
        """From the identity feature's Principal (or anything with the same attributes)."""
        return cls(user_id=principal.user_id, role=principal.role,
                   api_key_id=getattr(principal, "api_key_id", None),
                   license_id=getattr(principal, "license_id", None))

    @property
    def sees_whole_tenant(self) -> bool:
        return self.role in ("RESELLER", "ADMIN")


SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug or "agent"


def visible_agents(caller: Caller) -> Select[tuple[Agent]]:
    stmt = select(Agent)
    if not caller.sees_whole_tenant:
        stmt = stmt.where(or_(Agent.owner_id == caller.user_id, Agent.is_template.is_(True)))
    return stmt


def agent_by_id(caller: Caller, agent_id: Any) -> Select[tuple[Agent]]:
    """The agent with this id if the caller may see it (``agent_id`` may be a bound
    parameter: the read lane compiles this once, app/agents/lane_reads.py)."""
    return visible_agents(caller).where(Agent.id == agent_id)


def get_agent(caller: Caller, agent_id: uuid.UUID | str, *, for_edit: bool = False) -> Agent:
    """The agent if the caller may see it (and edit it, with ``for_edit``), else 404.

    404 rather than 403 for another customer's agent: its existence is not the caller's to know.
    """
    try:
        key = agent_id if isinstance(agent_id, uuid.UUID) else uuid.UUID(str(agent_id))
    except ValueError:
        raise ApiError(404, "agent_not_found", "No such agent.") from None
    agent = db.session.scalars(agent_by_id(caller, key)).first()
    if agent is None:
        raise ApiError(404, "agent_not_found", "No such agent.")
    if for_edit and not caller.sees_whole_tenant and agent.owner_id != caller.user_id:
        raise ApiError(403, "forbidden", "This agent is a template of your provider; you can "
                                         "run it but not change it.")
    return agent


def get_agent_by_slug(caller: Caller, slug: str) -> Agent:
    agent = db.session.scalars(visible_agents(caller).where(Agent.slug == slug)).first()
    if agent is None:
        raise ApiError(404, "agent_not_found", f"No agent with slug {slug!r}.")
    return agent


def create_agent(caller: Caller, *, name: str, slug: str | None = None,
                 description: str = "", version: dict[str, Any] | None = None) -> Agent:
    name = (name or "").strip()
    if not name:
        raise ApiError(422, "invalid_agent", "An agent needs a name.")
    slug = (slug or slugify(name)).strip()
    if not SLUG.match(slug):
        raise ApiError(422, "invalid_slug", "A slug is lowercase letters, digits and dashes.")
    taken = db.session.scalar(select(func.count()).select_from(Agent).where(Agent.slug == slug))
    if taken:
        raise ApiError(409, "slug_taken", f"The slug {slug!r} is already used in this "
                                          "workspace; choose another.")
    ensure_room("agents", caller.user_id)  # the customer's plan; templates the reseller's
    agent = Agent(owner_id=caller.user_id, is_template=caller.role == "RESELLER", name=name,
                  slug=slug, description=description or "")
    db.session.add(agent)
    db.session.flush()
    if version is not None:
        created = create_version(caller, agent, **version)
        agent.published_version = created.number
    return agent


def update_agent(caller: Caller, agent: Agent, **changes: Any) -> Agent:
    for field in ("name", "description", "status"):
        if changes.get(field) is not None:
            setattr(agent, field, changes[field])
    if agent.status not in ("active", "archived"):
        raise ApiError(422, "invalid_status", "Status is active or archived.")
    return agent


def delete_agent(caller: Caller, agent: Agent) -> None:
    db.session.delete(agent)


def model_for(caller: Caller, agent: Agent, requested: str | None) -> str | None:
    """The model a new version runs on. Staff choose it; a customer never does (the provider's
    model is not a customer's business, see customer_view): its agent keeps the model of its
    latest version, and a new agent gets the platform's default. What a customer sends is
    ignored, so no page or API call of theirs changes it."""
    if caller.sees_whole_tenant:
        return requested
    kept = db.session.scalar(select(AgentVersion.model).where(AgentVersion.agent_id == agent.id)
                             .order_by(AgentVersion.number.desc()).limit(1))
    from app.agents.config import agents_config

    return kept or agents_config().default_model


def create_version(caller: Caller, agent: Agent, *, model: str | None = None,
                   system_prompt: str = "",
                   variables: list[dict[str, Any]] | None = None, temperature: float = 0.7,
                   max_output_tokens: int = 1024,
                   tools: list[dict[str, Any]] | None = None) -> AgentVersion:
    """A new immutable version (never published implicitly, except an agent's first)."""
    model = model_for(caller, agent, model)
    if not model or len(model) > 100:
        raise ApiError(422, "invalid_version", "A version needs a model name.")
    if not 0 <= float(temperature) <= 2:
        raise ApiError(422, "invalid_version", "Temperature is between 0 and 2.")
    if not 1 <= int(max_output_tokens) <= 128_000:
        raise ApiError(422, "invalid_version", "Max output tokens is between 1 and 128000.")
    declared = templating.validate_declarations(system_prompt, variables or [])
    from app.agents.tools import validate_tools

    number = (db.session.scalar(select(func.max(AgentVersion.number))
                                .where(AgentVersion.agent_id == agent.id)) or 0) + 1
    version = AgentVersion(agent_id=agent.id, number=number, model=model,
                           system_prompt=system_prompt, variables=declared,
                           temperature=float(temperature), max_output_tokens=int(max_output_tokens),
                           tools=validate_tools(tools or []), created_by=caller.user_id,
                           created_at=clock.now())
    db.session.add(version)
    db.session.flush()
    return version


def list_versions(agent: Agent) -> Select[tuple[AgentVersion]]:
    return select(AgentVersion).where(AgentVersion.agent_id == agent.id)


def get_version(agent: Agent, number: int) -> AgentVersion:
    version = db.session.scalars(select(AgentVersion).where(
        AgentVersion.agent_id == agent.id, AgentVersion.number == number)).first()
    if version is None:
        raise ApiError(404, "version_not_found", f"This agent has no version {number}.")
    return version


def publish(caller: Caller, agent: Agent, number: int) -> AgentVersion:
    """Make ``number`` the version executions use. Rolling back is publishing an older one."""
    version = get_version(agent, number)
    agent.published_version = version.number
    return version


def published_version(agent: Agent) -> AgentVersion:
    if agent.published_version is None:
        raise ApiError(409, "agent_not_published", "This agent has no published version yet: "
                                                    "publish one before running it.")
    if agent.status != "active":
        raise ApiError(409, "agent_archived", "This agent is archived.")
    return get_version(agent, agent.published_version)
