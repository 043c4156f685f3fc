"""Runs one execution: LangChain's ChatOpenAI against the tenant's provider, streaming tokens.

The rules it keeps:

* **Claimed once.** A conditional UPDATE moves the row from ``queued`` to ``running``; a job
  delivered twice (RQ is at-least-once) finds nothing to claim and stops.
* **Retries only before the first token.** Transient provider errors (429, 5xx, connection,
  provider timeout) are retried here with exponential backoff while nothing has been streamed;
  once a token is out, a retry would repeat text the user already saw, so the execution fails.
* **Hard timeout.** Each provider call's timeout is the time left, and the deadline is checked
  between chunks and tool calls (no signals: it holds in any thread and any worker class); a
  provider that stalls past the deadline, before or after the first token, ends the run
  ``timed_out``. Behind it, the worker's own job timeout (SIGALRM, agents.tasks) ends a run
  stuck anywhere else, also as ``timed_out``.
* **Cancel** is a Redis flag checked before each piece of text goes out, each tool call and
  each round (and a row flag checked before claiming).
* The outcome (output, tokens, cost, timings, error) is written on the execution row.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_openai import ChatOpenAI
from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from app import clock, domain_events
from app.agents import streaming, templating
from app.agents.config import AgentsConfig, agents_config
from app.agents.errors import ExecutionFailure, classify
from app.agents.models import AgentVersion, Execution, Message
from app.agents.provider import Provider, built_on_client, resolve_provider
from app.agents.tools import call_tool, openai_tool_specs
from app.errors import ApiError
from app.extensions import db

log = logging.getLogger(__name__)
MAX_TOOL_ROUNDS = 4


def estimate_tokens(text: str) -> int:
    # ~4 characters a token for English; good enough to keep history under the window,
    # and the provider's own usage numbers are what we bill.
    return len(text) // 4 + 4


def build_messages(execution: Execution, version: AgentVersion,
                   config: AgentsConfig) -> list[BaseMessage]:
    """System prompt, as much recent history as fits the model's context, then the input."""
    system = templating.render(version.system_prompt, execution.variables or {})
    budget = config.context_for(version.model) - version.max_output_tokens
    fixed = estimate_tokens(system) + estimate_tokens(execution.input)
    if fixed > budget:
        raise ExecutionFailure("context_too_long", "The input and system prompt alone exceed "
                               f"the context window of {version.model}.")
    history: list[BaseMessage] = []
    if execution.conversation_id is not None:
        rows = db.session.scalars(
            select(Message).where(Message.conversation_id == execution.conversation_id)
            .order_by(Message.created_at.desc(), Message.id.desc()).limit(200)).all()
        room = budget - fixed
        for row in rows:  # newest first: the most recent turns are the ones worth keeping
            cost = estimate_tokens(row.content)
            if cost > room:
                break
            room -= cost
            history.append(HumanMessage(row.content) if row.role == "user"
                           else AIMessage(row.content))
        history.reverse()
    messages: list[BaseMessage] = [SystemMessage(system)] if system else []
    return [*messages, *history, HumanMessage(execution.input)]


@dataclass
class Progress:
    """What one run has produced so far (kept across retries)."""

    execution_id: str
    deadline: float
    output: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_at: datetime | None = None
    events: list[str] = field(default_factory=list)
    # Set when the cancel flag was just checked on the way (the "running" event): the next
    # check has nothing new to learn and skips the round trip.
    cancel_fresh: bool = False

    @property
    def streamed(self) -> bool:
        return self.first_token_at is not None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, cancel: bool = True) -> None:
        if cancel:
            fresh, self.cancel_fresh = self.cancel_fresh, False
            if not fresh and streaming.cancel_requested(self.execution_id):
                raise _cancelled()
        if self.remaining() <= 0:
            raise _timed_out()


def _cancelled() -> ExecutionFailure:
    return ExecutionFailure("cancelled", "The execution was cancelled.", status="cancelled")


def _timed_out() -> ExecutionFailure:
    return ExecutionFailure("execution_timeout", "The execution ran past its time limit.",
                            status="timed_out")


def _chat_model(version: AgentVersion, provider: Provider):
    """The version's chat model on the tenant's long-lived client, kept with that client.

    A fresh client per run (TLS context, connection pool) cost more than the rest of the
    pipeline; a version never changes, so neither does its model. The time left goes with
    each call instead (_stream_once).
    """

    def build(client):
        llm = ChatOpenAI(model=version.model, api_key=provider.api_key,
                         base_url=provider.base_url, client=client.chat.completions,
                         root_client=client, temperature=version.temperature,
                         max_tokens=version.max_output_tokens, max_retries=0,
                         stream_usage=True)
        return llm.bind_tools(openai_tool_specs(version.tools)) if version.tools else llm

    return built_on_client(provider, ("chat_model", version.id), build)


def _commit_keeping(execution: Execution, **written: Any) -> None:
    """Commit what the run's own UPDATE ``written`` on its row, and keep the loaded row as it
    now stands instead of expiring it: the run is the row's only writer while it runs, and
    reloading the whole row after each of its commits cost more than the rest of finish()."""
    session = db.session()
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
    for name, value in written.items():
        set_committed_value(execution, name, value)


def _on_first_token(progress: Progress, execution: Execution) -> None:
    progress.first_token_at = clock.now()
    # Committed at once: a sweeper that finds this run dead must know tokens went out
    # (and therefore must not retry it).
    db.session.execute(update(Execution).where(Execution.id == execution.id)
                       .values(first_token_at=progress.first_token_at)
                       .execution_options(synchronize_session=False))
    _commit_keeping(execution, first_token_at=progress.first_token_at)


def _stream_once(execution: Execution, version: AgentVersion, provider: Provider,
                 messages: list[BaseMessage], progress: Progress) -> None:
    llm = _chat_model(version, provider)
    for _round in range(MAX_TOOL_ROUNDS + 1):
        progress.check()
        total: Any = None
        for chunk in llm.stream(messages, timeout=max(progress.remaining(), 0.1)):
            text = chunk.content if isinstance(chunk.content, str) else ""
            # The deadline at every chunk; a cancel before any text goes out, not for the
            # empty chunks around it: before the first token is recorded, then with each
            # token's publication itself (one round trip, not two).
            progress.check(cancel=bool(text) and not progress.streamed)
            total = chunk if total is None else total + chunk
            if text:
                if not progress.streamed:
                    _on_first_token(progress, execution)
                if streaming.publish_unless_cancelled(progress.execution_id, "token",
                                                      {"text": text}) is None:
                    raise _cancelled()
                progress.output += text
        if total is None:
            return
        usage = getattr(total, "usage_metadata", None) or {}
        progress.prompt_tokens += int(usage.get("input_tokens", 0))
        progress.completion_tokens += int(usage.get("output_tokens", 0))
        calls = getattr(total, "tool_calls", None) or []
        if not calls:
            return
        messages.append(AIMessage(content=total.content or "", tool_calls=calls))
        for call in calls:
            progress.check()
            streaming.publish(progress.execution_id, "tool", {"name": call["name"]})
            answer = call_tool(version.tools, call["name"], call.get("args") or {})
            messages.append(ToolMessage(answer, tool_call_id=call["id"]))
    raise ExecutionFailure("too_many_tool_calls", "The model kept calling tools without "
                           "answering.")


def _run_with_retries(execution: Execution, version: AgentVersion, provider: Provider,
                      messages: list[BaseMessage], progress: Progress,
                      config: AgentsConfig) -> None:
    attempt = 0
    while True:
        try:
            _stream_once(execution, version, provider, list(messages), progress)
            return
        except JobTimeoutException:
            raise  # the worker's limit: no retry (run() records it)
        except Exception as error:  # classified below; unknown errors fail the execution
            failure = classify(error)
            if failure.code == "provider_timeout" and progress.remaining() <= 0:
                raise _timed_out() from error
            if not failure.transient or progress.streamed or attempt >= config.retries:
                raise failure from error
            backoff = config.retry_backoff * (2 ** attempt)
            if backoff >= progress.remaining():
                raise failure from error
            attempt += 1
            log.info("execution %s: %s, retry %d in %.1fs", execution.id, failure.code,
                     attempt, backoff)
            streaming.publish(progress.execution_id, "status",
                              {"status": "retrying", "attempt": attempt, "code": failure.code})
            time.sleep(backoff)  # backoff before retrying the provider (configurable; 0 in tests)


def claim(execution: Execution) -> bool:
    """queued → running, once. False if another delivery (or a cancel) got there first.

    One conditional UPDATE (and one commit) that also records the time spent queued.
    """
    now = clock.now()
    claimed = {"status": "running", "started_at": now, "attempts": execution.attempts + 1,
               "dispatches": 0,  # a worker took it: its jobs are not being lost
               "queue_wait_ms": int((now - execution.created_at).total_seconds() * 1000)}
    result = db.session.execute(
        update(Execution).where(Execution.id == execution.id, Execution.status == "queued",
                                Execution.cancel_requested.is_(False))
        .values(claimed).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.commit()
        return False
    _commit_keeping(execution, **claimed)
    return True


def _emit_outcome(execution: Execution) -> None:
    """execution.succeeded / execution.failed for webhooks and Zapier, in the same commit."""
    if execution.status not in ("succeeded", "failed", "timed_out"):
        return  # a cancellation is the caller's own doing: no event
    from app.integrations.events import emit

    data: dict[str, Any] = {
        "execution_id": str(execution.id), "agent_id": str(execution.agent_id),
        "user_id": str(execution.caller_user_id), "status": execution.status,
        "started_at": execution.started_at, "finished_at": execution.finished_at,
        "tokens": execution.prompt_tokens + execution.completion_tokens}
    if execution.status == "succeeded":
        emit("execution.succeeded", {**data, "output": execution.output},
             owner_user_id=execution.caller_user_id)
    else:
        emit("execution.failed", {**data, "error": {"code": execution.error_code,
                                                     "message": execution.error_message}},
             owner_user_id=execution.caller_user_id)


def finish(execution: Execution, status: str, *, output: str | None = None,
           code: str | None = None, message: str | None = None,
           progress: Progress | None = None) -> None:
    now = clock.now()
    execution.status = status
    execution.finished_at = now
    execution.error_code, execution.error_message = code, message
    if output is not None:
        execution.output = output
    if progress is not None:
        execution.prompt_tokens = progress.prompt_tokens
        execution.completion_tokens = progress.completion_tokens
        execution.cost_micros = agents_config().cost_micros(
            execution.model, progress.prompt_tokens, progress.completion_tokens)
    if execution.started_at is not None:
        execution.run_ms = int((now - execution.started_at).total_seconds() * 1000)
    if status == "succeeded" and execution.conversation_id is not None:
        db.session.add_all([
            Message(conversation_id=execution.conversation_id, execution_id=execution.id,
                    role="user", content=execution.input, created_at=execution.created_at),
            Message(conversation_id=execution.conversation_id, execution_id=execution.id,
                    role="assistant", content=execution.output, created_at=now)])
    # The outcome's row changes wait for the event's own flush: an autoflush before the
    # event's reads (who is owed it) would take SQLite's write lock for their duration.
    with db.session.no_autoflush:
        # Features that react to an outcome (billing's usage ledger) do so in this commit:
        # their reads now, their writes after the event's own reads.
        reactions = domain_events.publish("execution.finished", execution=execution,
                                          status=status)
        _emit_outcome(execution)
        for react in reactions:
            react()
    execution_id = str(execution.id)  # read before the commit expires the row
    db.session.commit()
    payload: dict[str, Any] = {"status": status}
    if code:
        payload["error"] = {"code": code, "message": message}
    streaming.publish(execution_id, "end", payload)


def _failure_of(error: Exception, execution_id: str) -> ExecutionFailure:
    """How an exception that ended a run is recorded (called while handling it)."""
    if isinstance(error, ExecutionFailure):
        return error
    if isinstance(error, JobTimeoutException):  # the worker's job timeout (agents.tasks)
        log.warning("execution %s: the worker's job timeout ended it", execution_id)
        return _timed_out()
    log.exception("execution %s failed unexpectedly", execution_id)
    return ExecutionFailure("internal_error", "The execution failed unexpectedly.")


def run(execution_id: str) -> dict[str, Any]:
    """The job body: run the execution to an outcome written on its row."""
    # The row and its version in one query: the claim's commit keeps both loaded, so the
    # version costs no statement of its own below.
    found = db.session.execute(
        select(Execution, AgentVersion)
        .outerjoin(AgentVersion, AgentVersion.id == Execution.version_id)
        .where(Execution.id == uuid.UUID(execution_id))).first()
    if found is None:
        return {"status": "missing", "claimed": False}
    execution, version = found
    if not claim(execution):
        db.session.refresh(execution)
        if execution.cancel_requested and not execution.is_terminal:
            finish(execution, "cancelled", code="cancelled",
                   message="The execution was cancelled before it started.")
        return {"status": execution.status, "claimed": False}
    config = agents_config()
    progress = Progress(execution_id, time.monotonic() + config.timeout_seconds)
    try:
        # "running" goes out unless a cancel came first: one round trip for the event and
        # the check the first round would make.
        if streaming.publish_unless_cancelled(execution_id, "status",
                                              {"status": "running"}) is None:
            raise _cancelled()
        progress.cancel_fresh = True
        try:
            provider = resolve_provider()
        except ApiError as exc:
            raise ExecutionFailure(exc.code, exc.message) from exc
        messages = build_messages(execution, version, config)
        _run_with_retries(execution, version, provider, messages, progress, config)
    except Exception as error:  # every way a run ends is written on its row
        failure = _failure_of(error, execution_id)
        db.session.rollback()
        finish(execution, failure.status, output=progress.output, code=failure.code,
               message=failure.message, progress=progress)
        return {"status": failure.status, "code": failure.code}
    finish(execution, "succeeded", output=progress.output, progress=progress)
    return {"status": "succeeded"}
