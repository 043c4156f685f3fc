"""Runs one execution: LangChain's ChatOpenAI against the tenant's provider, streaming tokens.

The rules it keeps:

* **Claimed once.** A conditional UPDATE moves the row from ``queued`` to ``running``; a job
  delivered twice (RQ is at-least-once) finds nothing to claim and stops.
* **Retries only before the first token.** Transient provider errors (429, 5xx, connection,
  provider timeout) are retried here with exponential backoff while nothing has been streamed;
  once a token is out, a retry would repeat text the user already saw, so the execution fails.
* **Hard timeout.** The provider client's timeout is the time left, and the deadline is checked
  between chunks and tool calls.
* **Cancel** is a Redis flag checked between chunks (and a row flag checked before claiming).
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
from sqlalchemy import select, update

from app import clock
from app.agents import streaming, templating
from app.agents.config import AgentsConfig, agents_config
from app.agents.errors import ExecutionFailure, classify
from app.agents.models import AgentVersion, Execution, Message
from app.agents.provider import Provider, resolve_provider
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

    @property
    def streamed(self) -> bool:
        return self.first_token_at is not None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if streaming.cancel_requested(self.execution_id):
            raise ExecutionFailure("cancelled", "The execution was cancelled.",
                                   status="cancelled")
        if self.remaining() <= 0:
            raise _timed_out()


def _timed_out() -> ExecutionFailure:
    return ExecutionFailure("execution_timeout", "The execution ran past its time limit.",
                            status="timed_out")


def _chat_model(version: AgentVersion, provider: Provider, timeout: float):
    llm = ChatOpenAI(model=version.model, api_key=provider.api_key, base_url=provider.base_url,
                     temperature=version.temperature, max_tokens=version.max_output_tokens,
                     timeout=max(timeout, 0.1), max_retries=0, stream_usage=True)
    if version.tools:
        return llm.bind_tools(openai_tool_specs(version.tools))
    return llm


def _on_first_token(progress: Progress, execution: Execution) -> None:
    progress.first_token_at = clock.now()
    # Committed at once: a sweeper that finds this run dead must know tokens went out
    # (and therefore must not retry it).
    db.session.execute(update(Execution).where(Execution.id == execution.id)
                       .values(first_token_at=progress.first_token_at)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def _stream_once(execution: Execution, version: AgentVersion, provider: Provider,
                 messages: list[BaseMessage], progress: Progress) -> None:
    llm = _chat_model(version, provider, progress.remaining())
    for _round in range(MAX_TOOL_ROUNDS + 1):
        progress.check()
        total: Any = None
        for chunk in llm.stream(messages):
            progress.check()
            total = chunk if total is None else total + chunk
            text = chunk.content if isinstance(chunk.content, str) else ""
            if text:
                if not progress.streamed:
                    _on_first_token(progress, execution)
                progress.output += text
                streaming.publish(progress.execution_id, "token", {"text": text})
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


def claim(execution_id: uuid.UUID) -> bool:
    """queued → running, once. False if another delivery (or a cancel) got there first."""
    now = clock.now()
    result = db.session.execute(
        update(Execution).where(Execution.id == execution_id, Execution.status == "queued",
                                Execution.cancel_requested.is_(False))
        .values(status="running", started_at=now, attempts=Execution.attempts + 1)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


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
    db.session.commit()
    payload: dict[str, Any] = {"status": status}
    if code:
        payload["error"] = {"code": code, "message": message}
    streaming.publish(str(execution.id), "end", payload)


def run(execution_id: str) -> dict[str, Any]:
    """The job body: run the execution to an outcome written on its row."""
    key = uuid.UUID(execution_id)
    if not claim(key):
        execution = db.session.get(Execution, key)
        if execution is not None and execution.cancel_requested and not execution.is_terminal:
            finish(execution, "cancelled", code="cancelled",
                   message="The execution was cancelled before it started.")
        return {"status": execution.status if execution else "missing", "claimed": False}
    execution = db.session.get(Execution, key)
    execution.queue_wait_ms = int((execution.started_at - execution.created_at)
                                  .total_seconds() * 1000)
    db.session.commit()
    config = agents_config()
    streaming.publish(execution_id, "status", {"status": "running"})
    progress = Progress(execution_id, time.monotonic() + config.timeout_seconds)
    try:
        version = db.session.get(AgentVersion, execution.version_id)
        try:
            provider = resolve_provider()
        except ApiError as exc:
            raise ExecutionFailure(exc.code, exc.message) from exc
        messages = build_messages(execution, version, config)
        _run_with_retries(execution, version, provider, messages, progress, config)
    except ExecutionFailure as failure:
        db.session.rollback()
        finish(execution, failure.status, output=progress.output, code=failure.code,
               message=failure.message, progress=progress)
        return {"status": failure.status, "code": failure.code}
    except Exception:
        log.exception("execution %s failed unexpectedly", execution_id)
        db.session.rollback()
        finish(execution, "failed", output=progress.output, code="internal_error",
               message="The execution failed unexpectedly.", progress=progress)
        return {"status": "failed", "code": "internal_error"}
    finish(execution, "succeeded", output=progress.output, progress=progress)
    return {"status": "succeeded"}
