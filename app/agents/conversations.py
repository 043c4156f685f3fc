"""Conversations: multi-turn threads with an agent, read and deleted by their owner.

Executions create them and continue them (``conversation_id``, see executions.py); the engine
appends each finished turn. A USER sees only its own; a RESELLER every one of its tenant,
like executions. Another customer's conversation is a 404, as if it did not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select

from app.agents.models import Agent, Conversation, Execution, Message
from app.agents.service import Caller
from app.errors import ApiError
from app.extensions import db

BUSY = ("queued", "running")


def visible_conversations(caller: Caller, agent_id: uuid.UUID | None = None
                          ) -> Select[tuple[Conversation]]:
    stmt = select(Conversation)
    if not caller.sees_whole_tenant:
        stmt = stmt.where(Conversation.user_id == caller.user_id)
    if agent_id is not None:
        stmt = stmt.where(Conversation.agent_id == agent_id)
    return stmt


def get_conversation(caller: Caller, conversation_id: uuid.UUID | str) -> Conversation:
    try:
        key = uuid.UUID(str(conversation_id))
    except ValueError:
        raise ApiError(404, "conversation_not_found", "No such conversation.") from None
    conversation = db.session.scalars(
        visible_conversations(caller).where(Conversation.id == key)).first()
    if conversation is None:
        raise ApiError(404, "conversation_not_found", "No such conversation.")
    return conversation


def messages_of(conversation: Conversation) -> list[Message]:
    """The whole thread, oldest first (the order the model is given it in)."""
    return list(db.session.scalars(
        select(Message).where(Message.conversation_id == conversation.id)
        .order_by(Message.created_at, Message.id)))


def with_messages(conversation: Conversation) -> dict[str, Any]:
    """The conversation's columns plus its messages: the detail answer's shape."""
    columns = {column.key: getattr(conversation, column.key)
               for column in Conversation.__table__.columns}
    return {**columns, "messages": messages_of(conversation)}


def delete_conversation(caller: Caller, conversation: Conversation) -> None:
    """Delete the thread and its messages; its executions stay, no longer linked to it.

    Refused while one of its executions is queued or running: the worker would append that
    turn to a thread that no longer exists.
    """
    busy = db.session.scalar(select(func.count()).select_from(Execution).where(
        Execution.conversation_id == conversation.id, Execution.status.in_(BUSY)))
    if busy:
        raise ApiError(409, "conversation_busy", "An execution in this conversation has not "
                                                 "finished yet; cancel it or wait, then delete.")
    # The database cascades the messages and unlinks the executions (ON DELETE CASCADE and
    # SET NULL), in this same statement.
    db.session.delete(conversation)
    from app.auth import audit

    agent = db.session.get(Agent, conversation.agent_id)
    # The agent's name only: a conversation's title is the customer's own words.
    audit.record("conversation_deleted", **audit.acting(), target_type="conversation",
                 target_id=conversation.id, agent=agent.name if agent else "(deleted)")
