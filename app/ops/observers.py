"""Outcome counters read off the domain rows, as they commit.

Every unit of background work writes its outcome on its row (an execution's status, an
email's, a webhook delivery's, a Stripe event's), so that row is where the counters look:
one SQLAlchemy ``after_flush`` listener notes the status changes of those rows, and
``after_commit`` counts them, once per row and transaction with the status its last flush
wrote (a rolled-back change is never counted). The features need no
metrics calls of their own, and a new code path that finishes an execution is counted too.
Core ``UPDATE`` statements (the claims that move rows to running or sending) are not seen,
and need not be: only outcomes are counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from app.ops import metrics

_PENDING = "albedo_ops_outcomes"
_installed = False


def _changed(obj: Any, name: str) -> Any | None:
    """The new value of ``name`` when this flush changed it, else None."""
    history = inspect(obj).attrs[name].history
    return history.added[0] if history.added else None


def _execution(obj: Any) -> Callable[[], None] | None:
    status = _changed(obj, "status")
    if status not in metrics.EXECUTION_OUTCOMES:
        return None
    state = inspect(obj).dict
    model = _model_label(state.get("model"))
    prompt, completion = state.get("prompt_tokens") or 0, state.get("completion_tokens") or 0
    cost, run_ms, wait_ms = state.get("cost_micros") or 0, state.get("run_ms"), \
        state.get("queue_wait_ms")

    def count() -> None:
        metrics.executions.labels(status, model).inc()
        if wait_ms is not None:
            metrics.execution_queue_wait.observe(wait_ms / 1000)
        if run_ms is not None:
            metrics.execution_run.labels(status).observe(run_ms / 1000)
        if prompt:
            metrics.execution_tokens.labels(model, "prompt").inc(prompt)
        if completion:
            metrics.execution_tokens.labels(model, "completion").inc(completion)
        if cost:
            metrics.provider_cost.labels(model).inc(cost / 1_000_000)

    return count


def _model_label(model: str | None) -> str:
    # Models are free text in an agent version; only the configured price table's names
    # (plus the defaults) become labels.
    from app.agents.config import agents_config

    try:
        known = agents_config().prices
    except Exception:  # outside an app context: no table to check against
        return "other"
    return metrics.bounded(model, known)


def _email(obj: Any) -> Callable[[], None] | None:
    # Each try adds one to attempts and writes its outcome (a second "retrying" in a row is
    # no change of status, but it is a try).
    if _changed(obj, "attempts") is None and _changed(obj, "status") is None:
        return None
    status = inspect(obj).dict.get("status")
    if status not in metrics.EMAIL_OUTCOMES:
        return None
    return lambda: metrics.emails.labels(status).inc()


def _delivery(obj: Any) -> Callable[[], None] | None:
    status = _changed(obj, "status")
    # Back to pending from an attempt (it had a last error): a failed try that will retry.
    if status == "pending" and inspect(obj).dict.get("last_error"):
        status = "retrying"
    if status not in metrics.DELIVERY_OUTCOMES:
        return None
    return lambda: metrics.webhook_deliveries.labels(status).inc()


def _endpoint(obj: Any) -> Callable[[], None] | None:
    if _changed(obj, "enabled") is False:
        return metrics.webhook_endpoints_disabled.inc
    return None


def _stripe_event(obj: Any) -> Callable[[], None] | None:
    outcome = _changed(obj, "outcome")
    if outcome is None or outcome == "received":
        return None
    from app.billing.webhooks import HANDLED_EVENTS

    kind = metrics.bounded(inspect(obj).dict.get("type"), HANDLED_EVENTS)
    label = outcome if outcome.isidentifier() and len(outcome) <= 32 else "other"
    return lambda: metrics.stripe_events.labels(kind, label).inc()


def _observers() -> dict[type, Callable[[Any], Callable[[], None] | None]]:
    from app.agents.models import Execution
    from app.billing.models import StripeEvent
    from app.email.models import OutboundEmail
    from app.integrations.models import WebhookDelivery, WebhookEndpoint

    return {Execution: _execution,
            OutboundEmail: _email,
            WebhookDelivery: _delivery, WebhookEndpoint: _endpoint, StripeEvent: _stripe_event}


def install() -> None:
    """Listen on every session once per process (create_app calls it)."""
    global _installed
    if _installed:
        return
    observers = _observers()

    @event.listens_for(Session, "after_flush")
    def _note(session: Session, _context) -> None:
        for obj in (*session.new, *session.dirty):
            observe = observers.get(type(obj))
            if observe is None:
                continue
            try:
                counted = observe(obj)
            except Exception:  # a metric must never break a flush
                counted = None
            if counted is not None:  # a later flush of the same row replaces an earlier one
                session.info.setdefault(_PENDING, {})[id(obj)] = counted

    @event.listens_for(Session, "after_commit")
    def _count(session: Session) -> None:
        for counted in session.info.pop(_PENDING, {}).values():
            counted()

    @event.listens_for(Session, "after_rollback")
    def _discard(session: Session) -> None:
        session.info.pop(_PENDING, None)

    _installed = True
