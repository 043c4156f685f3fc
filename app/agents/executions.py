"""Starting, finding, waiting on and cancelling executions (no Flask request objects here)."""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError

from app import clock, domain_events
from app.agents import quotas, streaming, templating
from app.agents.models import EXECUTION_STATUSES, Agent, Conversation, Execution, Message
from app.agents.provider import resolve_provider
from app.agents.service import Caller, get_version, published_version
from app.api import idempotency
from app.errors import ApiError
from app.extensions import db
from app.models import new_id
from jobs.enqueue import enqueue_after_commit

TASK = "agents.execute"
MAX_INPUT_CHARS = 100_000


def job_id_for(execution_id: uuid.UUID, attempt: int = 0) -> str:
    return f"agent-execution-{execution_id}-{attempt}"


def _by_idempotency_key(caller: Caller, key: str, fingerprint: str) -> Execution | None:
    """The execution this key made within 24 hours (422 if it was for another request)."""
    return idempotency.find(Execution, Execution.caller_user_id == caller.user_id, key,
                            fingerprint)


def _conversation(caller: Caller, agent: Agent, conversation_id: str | None,
                  first_input: str, history: list[tuple[str, str]]) -> Conversation:
    if conversation_id is None:
        # Its id now, not from a flush: the caller's writes then go out together.
        conversation = Conversation(id=new_id(), agent_id=agent.id, user_id=caller.user_id,
                                    title=first_input[:200])
        db.session.add(conversation)
        # Prior turns sent by the client (the OpenAI-compatible endpoint): stored like
        # our own, so the engine trims them to the context window the same way.
        start = clock.now() - timedelta(milliseconds=len(history) + 1)
        for index, (role, content) in enumerate(history):
            db.session.add(Message(conversation_id=conversation.id, role=role,
                                   content=content,
                                   created_at=start + timedelta(milliseconds=index)))
        return conversation
    try:
        key = uuid.UUID(str(conversation_id))
    except ValueError:
        key = None
    conversation = db.session.scalars(select(Conversation).where(
        Conversation.id == key, Conversation.user_id == caller.user_id,
        Conversation.agent_id == agent.id)).first() if key else None
    if conversation is None:
        raise ApiError(404, "conversation_not_found",
                       "No such conversation with this agent.")
    return conversation


def start_execution(caller: Caller, agent: Agent, *, input: str,
                    variables: dict[str, Any] | None = None,
                    conversation_id: str | None = None, idempotency_key: str | None = None,
                    source: str = "api",
                    history: list[tuple[str, str]] | None = None,
                    version_number: int | None = None) -> tuple[Execution, bool]:
    """Validate, count against the quotas, store and enqueue; (execution, created).

    With an ``idempotency_key`` a retried request gets the execution the first one created
    (app/api/idempotency.py: the same key with another request is a 422).

    Redis down: the execution is stored and charged all the same and the answer is 202; its
    job is dispatched by the recovery sweep once Redis is back (jobs/durable.py).
    ``version_number``: run that version instead of the published one (the builder's
    sandbox trying a draft; the caller checks the right to edit the agent).

    With an ``idempotency_key`` a retried request gets the execution the first one created.
    """
    idempotency_key = idempotency.checked(idempotency_key)
    fingerprint = idempotency.fingerprint(str(agent.id), input, variables, conversation_id,
                                          source, history)
    if idempotency_key:
        existing = _by_idempotency_key(caller, idempotency_key, fingerprint)
        if existing is not None:
            return existing, False
    if not isinstance(input, str) or not input.strip():
        raise ApiError(422, "invalid_input", "The input is an empty text.")
    if len(input) > MAX_INPUT_CHARS:
        raise ApiError(413, "input_too_long", f"The input is over {MAX_INPUT_CHARS} characters.")
    version = (get_version(agent, version_number) if version_number is not None
               else published_version(agent))
    values = templating.resolve(version.variables, variables)
    resolve_provider()  # refuse now, with the how-to-configure message, rather than in a job
    # Every read before the first write. On SQLite the first write takes the database's one
    # write lock until the commit, and every worker's claim, first token and outcome wait for
    # it (sleeping in SQLite's busy handler): reading the plan's limits while holding it made
    # a burst of starts stall the runs in progress (bench/execution_pipeline.py).
    scopes = quotas.scopes_for(caller.user_id, caller.api_key_id, caller.license_id)
    from app.billing import spending  # the shared rule on spend, as quotas are on counts

    admission = spending.prepare(caller.user_id, agent.id, version.model, input,
                                 version.system_prompt, version.max_output_tokens)
    conversation = _conversation(caller, agent, conversation_id, input, history or [])
    quotas.reserve(caller.user_id, scopes=scopes)
    execution = Execution(
        agent_id=agent.id, version_id=version.id, version_number=version.number,
        model=version.model, conversation_id=conversation.id, caller_user_id=caller.user_id,
        api_key_id=caller.api_key_id, license_id=caller.license_id, source=source,
        input=input, variables=values, status="queued", idempotency_key=idempotency_key,
        idempotency_fingerprint=fingerprint if idempotency_key else None,
        created_at=clock.now())
    db.session.add(execution)
    try:
        db.session.flush()
    except IntegrityError:
        # The same Idempotency-Key raced us; its execution is the answer (and our quota
        # reservation rolls back with this transaction).
        db.session.rollback()
        existing = (_by_idempotency_key(caller, idempotency_key, fingerprint)
                    if idempotency_key else None)
        if existing is None:
            raise
        return existing, False
    spending.admit(admission, execution.id)  # 402 when a hard limit or credits refuse
    enqueue_after_commit(db.session, TASK, str(execution.id),
                         job_id=job_id_for(execution.id))
    db.session.commit()
    # The row is the truth; with Redis down a stream reader sees the status on the row.
    with contextlib.suppress(RedisError):
        streaming.publish(str(execution.id), "status", {"status": "queued"})
    return execution, True


def visible_executions(caller: Caller) -> Select[tuple[Execution]]:
    stmt = select(Execution)
    if not caller.sees_whole_tenant:
        stmt = stmt.where(Execution.caller_user_id == caller.user_id)
    return stmt


def get_execution(caller: Caller, execution_id: str | uuid.UUID) -> Execution:
    try:
        key = uuid.UUID(str(execution_id))
    except ValueError:
        raise ApiError(404, "execution_not_found", "No such execution.") from None
    execution = db.session.scalars(visible_executions(caller).where(Execution.id == key)).first()
    if execution is None:
        raise ApiError(404, "execution_not_found", "No such execution.")
    return execution


def filtered(caller: Caller, *, agent_id: uuid.UUID | None = None, status: str | None = None,
             since: datetime | None = None, until: datetime | None = None) -> Select:
    stmt = visible_executions(caller)
    if agent_id is not None:
        stmt = stmt.where(Execution.agent_id == agent_id)
    if status is not None:
        if status not in EXECUTION_STATUSES:
            raise ApiError(422, "invalid_status",
                           f"status is one of {', '.join(EXECUTION_STATUSES)}.")
        stmt = stmt.where(Execution.status == status)
    if since is not None:
        stmt = stmt.where(Execution.created_at >= since)
    if until is not None:
        stmt = stmt.where(Execution.created_at < until)
    return stmt


def cancel(caller: Caller, execution: Execution) -> Execution:
    """A queued execution is cancelled at once; a running one at its next chunk."""
    if execution.is_terminal:
        raise ApiError(409, "execution_finished",
                       f"The execution already ended ({execution.status}).")
    now = clock.now()
    # Whatever reacts to outcomes reads now (before this transaction's first write) and
    # writes only if the cancel ends the execution here.
    reactions = domain_events.publish("execution.finished", execution=execution,
                                      status="cancelled")
    done = db.session.execute(
        update(Execution).where(Execution.id == execution.id, Execution.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=now,
                error_code="cancelled", error_message="The execution was cancelled.")
        .execution_options(synchronize_session=False)).rowcount
    if not done:
        execution.cancel_requested = True
    else:  # ended here, never started
        for react in reactions:
            react()
    db.session.commit()
    streaming.request_cancel(str(execution.id))
    if done:
        streaming.publish(str(execution.id), "end", {"status": "cancelled", "error": {
            "code": "cancelled", "message": "The execution was cancelled."}})
    db.session.refresh(execution)
    return execution


def wait_for(execution: Execution, seconds: float) -> Execution:
    """Block up to ``seconds`` for the execution to end (``Prefer: wait=N``), on its stream."""
    deadline = time.monotonic() + seconds
    after = "0"
    while not execution.is_terminal:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            events = streaming.read(str(execution.id), after,
                                    block_ms=max(int(left * 1000), 1))
        except RedisError:  # no stream to wait on: answer with the row as it stands (202)
            break
        if events:
            after = events[-1][0]
        if not events or any(kind == "end" for _, kind, _ in events):
            db.session.commit()  # end the read snapshot so the refresh sees the worker's write
            db.session.refresh(execution)
    return execution
