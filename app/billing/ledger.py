"""The usage ledger: one immutable entry per charged execution, written when it ends.

Billing reacts to the agents engine's ``execution.finished`` domain event (app.domain_events)
in the engine's own transaction, so an execution's outcome and its entry are committed
together or not at all. What is charged (docs/rebilling.md):

* ``succeeded``: its tokens, its provider cost, and a per-execution price;
* ``cancelled`` or ``timed_out`` after it started: the tokens the provider reported as used
  (token and markup prices; no per-execution price);
* ``failed`` (a provider error, a lost worker) and anything cancelled before it started:
  nothing, no entry.

An entry is never changed (an ORM guard here, a trigger in the database): a correction is a
reversing entry with every amount negated, at most one per entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import and_, literal, select

from app import clock
from app.billing import book_cache, notices, pricing, spending
from app.billing.rebilling_models import CustomerAccount, LedgerEntry, PlanUsage, UsageHold
from app.errors import ApiError
from app.extensions import db
from app.models import new_id
from tenants.context import current_id

CHARGED_WHEN_STARTED = frozenset({"cancelled", "timed_out"})


def is_charged(status: str, started: bool) -> bool:
    return status == "succeeded" or (status in CHARGED_WHEN_STARTED and started)


def credential_of(execution: Any) -> tuple[str, uuid.UUID | None]:
    """The credential kind and id an execution ran under (a generic pair, so new kinds of
    credential need no new column)."""
    if execution.license_id is not None:
        return "license", execution.license_id
    if execution.api_key_id is not None:
        return ("widget_key" if execution.source == "widget" else "api_key",
                execution.api_key_id)
    return "session", None


@dataclass(frozen=True)
class Allowance:
    """The customer's plan: included usage per month and the overage price."""

    included_micro: int = 0
    overage_bp: int = pricing.BASIS


def allowance_for(user_id: uuid.UUID) -> Allowance:
    from app.billing.limits import plan_for

    # The tenant's plans' allowances, from this process's cache: a tenant whose plans
    # include no usage (most) costs no query here at all.
    allowances = book_cache.of_app().get(current_id(), "allowances", _allowances)
    if not allowances:
        return Allowance()
    plan = plan_for(user_id)
    return allowances.get(plan.id, Allowance()) if plan is not None else Allowance()


def _allowances() -> dict[uuid.UUID, Allowance]:
    return {row.plan_id: Allowance(row.included_minor * pricing.MICRO, row.overage_bp)
            for row in db.session.scalars(select(PlanUsage))}


def split(retail: int, spent_after: int, allowance: Allowance) -> tuple[int, int]:
    """(included, overage) of a charge of ``retail`` that brought the month to
    ``spent_after``: the part under the plan's included usage is free, the rest is priced at
    the overage share."""
    before = spent_after - retail
    cap = allowance.included_micro
    included = max(0, min(spent_after, cap) - min(before, cap))
    overage = pricing.round_money(Fraction(retail - included) * allowance.overage_bp
                                  / pricing.BASIS)
    return included, overage


def _outcome_rows(execution: Any) -> tuple[bool, CustomerAccount | None, UsageHold | None]:
    """In one query: whether the execution is charged already, its customer's account and
    its unsettled hold (each joined, when there is one, to a row of one constant)."""
    charged = select(LedgerEntry.id).where(LedgerEntry.execution_id == execution.id,
                                           LedgerEntry.kind == "charge").exists()
    one = select(literal(1).label("one")).subquery("one")
    row = db.session.execute(
        select(charged.label("charged"), CustomerAccount, UsageHold)
        .select_from(one)
        .outerjoin(CustomerAccount, CustomerAccount.user_id == execution.caller_user_id)
        .outerjoin(UsageHold, and_(UsageHold.execution_id == execution.id,
                                   UsageHold.settled_at.is_(None)))).one()
    return bool(row[0]), row[1], row[2]


def on_execution_finished(execution: Any, status: str, **_: Any) -> Callable[[], None]:
    """The ``execution.finished`` handler: reads now, returns the writes (settle the hold,
    record the charge) for the publisher to run after its own reads.

    Every read comes before the transaction's first write (on SQLite that write holds the
    database's only write lock until the commit): the execution's charge, account and hold
    in one query, the price books and plan allowances from this process's cache, and who is
    owed the notices a charge may cause (``notices.prepare``).
    """
    user_id = execution.caller_user_id
    already, account, hold = _outcome_rows(execution)
    # A repeat finds the charge already there: the unique index would refuse a second one.
    charged = is_charged(status, execution.started_at is not None) and not already
    write = prepare_charge(execution, status, account) if charged else None

    def settle() -> None:
        released = spending.release_hold(hold)
        if write is None:
            spending.settle_credits(user_id, released, 0)
        else:
            write(released)

    return settle


def record(execution: Any, status: str, released: spending.Released | None = None
           ) -> LedgerEntry:
    """Write the charge of ``execution`` now."""
    account = spending.account_of(execution.caller_user_id)
    return prepare_charge(execution, status, account)(released)


def prepare_charge(execution: Any, status: str, account: CustomerAccount | None
                   ) -> Callable[[spending.Released | None], LedgerEntry]:
    """Read what pricing ``execution`` needs (``account``: its customer's, already read);
    returns the writes that record its charge."""
    user_id = execution.caller_user_id
    usage = pricing.Usage(execution.prompt_tokens, execution.completion_tokens,
                          execution.cost_micros)
    book = pricing.cached_book()
    wholesale_book = pricing.cached_wholesale_book(current_id())
    if status != "succeeded":
        # A run that did not finish pays for its tokens only, never a per-execution price.
        book, wholesale_book = _without_execution_price(book), \
            _without_execution_price(wholesale_book)
    retail = book.price(execution.agent_id, execution.model, usage)
    wholesale = wholesale_book.price(execution.agent_id, execution.model, usage)
    allowance = allowance_for(user_id)
    announce = notices.prepare(user_id, account, book.currency)
    kind, credential = credential_of(execution)
    fields = dict(
        kind="charge", execution_id=execution.id, customer_id=user_id,
        credential_kind=kind, credential_id=credential, channel=execution.source,
        agent_id=execution.agent_id, version_number=execution.version_number,
        model=execution.model, prompt_tokens=execution.prompt_tokens,
        completion_tokens=execution.completion_tokens,
        provider_cost_micro=pricing.provider_cost_micro(execution.cost_micros),
        wholesale_micro=wholesale, wholesale_currency=wholesale_book.currency,
        retail_micro=retail, currency=book.currency)
    finished_at = execution.finished_at

    def write(released: spending.Released | None) -> LedgerEntry:
        now = clock.now()
        occurred = finished_at or now
        period = spending.period_of(occurred)
        spent_after = spending.add_spend(user_id, period, retail)
        included, overage = split(retail, spent_after, allowance)
        settled = spending.settle_credits(user_id, released, overage)
        entry = LedgerEntry(id=new_id(), included_micro=included,
                            credits_micro=settled.debit_micro,
                            billable_micro=overage - settled.debit_micro, period=period,
                            occurred_at=occurred, created_at=now, **fields)
        db.session.add(entry)
        if announce is not None:
            announce(period, spent_after, settled.balance_micro)
        return entry

    return write


def _without_execution_price(book: pricing.Book) -> pricing.Book:
    rules = {key: (pricing.Rule("execution") if rule.kind == "execution" else rule)
             for key, rule in book.by_selector.items()}
    return pricing.Book(book.currency, book.usd_rate_ppm, rules, book.meter_event_name,
                        book.stripe_meter_id)


def reverse(entry_id: uuid.UUID | str, reason: str) -> LedgerEntry:
    """A correction: a new entry negating ``entry_id`` (once), its spend and its credits."""
    try:
        key = uuid.UUID(str(entry_id))
    except ValueError:
        raise ApiError(404, "ledger_entry_not_found", "No such ledger entry.") from None
    original = db.session.get(LedgerEntry, key)
    if original is None:
        raise ApiError(404, "ledger_entry_not_found", "No such ledger entry.")
    if original.kind != "charge":
        raise ApiError(409, "not_reversible", "Only a charge can be reversed.")
    if db.session.scalar(select(LedgerEntry.id).where(LedgerEntry.reverses_id == original.id)):
        raise ApiError(409, "already_reversed", "This entry has been reversed already.")
    if not (reason or "").strip():
        raise ApiError(422, "invalid_reason", "A reversal needs a reason.")
    negated = {name: -getattr(original, name) for name in (
        "prompt_tokens", "completion_tokens", "provider_cost_micro", "wholesale_micro",
        "retail_micro", "included_micro", "credits_micro", "billable_micro")}
    same = {name: getattr(original, name) for name in (
        "execution_id", "customer_id", "credential_kind", "credential_id", "channel",
        "agent_id", "version_number", "model", "wholesale_currency", "currency", "period")}
    now = clock.now()
    entry = LedgerEntry(kind="reversal", reverses_id=original.id, occurred_at=now,
                        created_at=now, reason=reason.strip()[:1000], **same, **negated)
    spending.add_spend(original.customer_id, original.period, -original.retail_micro)
    if original.credits_micro:
        spending.refund_credits(original.customer_id, original.credits_micro)
    db.session.add(entry)
    db.session.flush()
    from app.auth import audit

    audit.record("ledger_entry_reversed", **audit.acting(), target_type="user",
                 target_id=original.customer_id, entry_id=str(original.id),
                 reason=entry.reason)
    return entry


def register() -> None:
    """Subscribe to the agents engine's outcome (called by billing's init_app)."""
    from app import domain_events

    domain_events.subscribe("execution.finished", on_execution_finished)
