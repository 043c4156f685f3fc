"""Spending limits and prepaid credits: reserve when an execution starts, settle when it ends.

A customer may have a monthly spending limit (soft: announce at 80 % and 100 % and carry on;
hard: refuse new executions with 402 ``spending_limit_reached``) and prepaid credits
(refused with 402 ``insufficient_credits`` when they cannot cover one more run).

Starting an execution *holds* the most it can cost (its price book's price for the input's
estimated tokens plus the version's ``max_output_tokens``). Each hold is one conditional
UPDATE (``… WHERE spent + held + hold <= limit``; ``… WHERE balance >= hold``) in the
transaction that creates the execution, so the database serialises concurrent starts on the
customer's row: against a balance for ten runs, exactly ten start, however many arrive at
once, and a balance never goes negative (a CHECK constraint backs this). The ledger settles
the hold when the execution ends: the hold is released and the actual price is spent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from app import clock
from app.billing import pricing
from app.billing.rebilling_models import CustomerAccount, SpendPeriod, UsageHold
from app.errors import ApiError
from app.extensions import db
from tenants.context import current_id

SOFT_THRESHOLDS = (80, 100)


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def account_of(user_id: uuid.UUID) -> CustomerAccount | None:
    return db.session.scalars(select(CustomerAccount)
                              .where(CustomerAccount.user_id == user_id)).first()


def _insert(model):
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def ensure_period(user_id: uuid.UUID, period: str) -> None:
    db.session.execute(_insert(SpendPeriod).values(
        id=uuid.uuid4(), tenant_id=current_id(), user_id=user_id, period=period,
        spent_micro=0, held_micro=0, notified_pct=0).on_conflict_do_nothing(
        index_elements=["tenant_id", "user_id", "period"]))


@dataclass(frozen=True)
class Admission:
    """What ``admit`` must reserve for one execution (read before the transaction's first
    write, see executions.start_execution)."""

    user_id: uuid.UUID
    hold_micro: int
    limit_micro: int | None  # a hard limit, in micro-minor units
    limit_minor: int | None
    credits: bool
    currency: str


def estimate_tokens(text: str) -> int:
    # The engine's own estimate (about four characters a token): a hold only needs to be
    # a fair upper bound of the input, and max_output_tokens bounds the answer.
    return len(text) // 4 + 4


def prepare(user_id: uuid.UUID, agent_id: uuid.UUID, model: str, text: str,
            system_prompt: str, max_output_tokens: int) -> Admission | None:
    """The hold an execution needs, or None when the customer has neither a hard limit
    nor credits (then nothing is reserved and starting costs no extra write)."""
    account = account_of(user_id)
    if account is None:
        return None
    hard = account.spending_limit_minor is not None and account.limit_mode == "hard"
    if not hard and not account.credits_enabled:
        return None
    from app.agents.config import agents_config

    book = pricing.cached_book()
    prompt = estimate_tokens(text) + estimate_tokens(system_prompt)
    usage = pricing.Usage(prompt, max_output_tokens,
                          agents_config().cost_micros(model, prompt, max_output_tokens))
    hold = book.price(agent_id, model, usage)
    limit = account.spending_limit_minor if hard else None
    return Admission(user_id, hold, limit * pricing.MICRO if limit is not None else None,
                     limit, account.credits_enabled, book.currency)


def admit(admission: Admission | None, execution_id: uuid.UUID) -> None:
    """Reserve the hold for ``execution_id`` or raise 402. Call inside the transaction that
    creates the execution; on a refusal the transaction is rolled back here."""
    if admission is None:
        return
    now = clock.now()
    period = period_of(now)
    user_id, hold = admission.user_id, admission.hold_micro
    if admission.limit_micro is not None:
        ensure_period(user_id, period)
        moved = db.session.execute(
            update(SpendPeriod)
            .where(SpendPeriod.user_id == user_id, SpendPeriod.period == period,
                   SpendPeriod.spent_micro + SpendPeriod.held_micro + hold
                   <= admission.limit_micro)
            .values(held_micro=SpendPeriod.held_micro + hold)
            .execution_options(synchronize_session=False)).rowcount
        if moved != 1:
            db.session.rollback()
            raise spending_limit_reached(admission, period)
    if admission.credits:
        moved = db.session.execute(
            update(CustomerAccount)
            .where(CustomerAccount.user_id == user_id,
                   CustomerAccount.credit_balance_micro >= hold)
            .values(credit_balance_micro=CustomerAccount.credit_balance_micro - hold,
                    credit_held_micro=CustomerAccount.credit_held_micro + hold)
            .execution_options(synchronize_session=False)).rowcount
        if moved != 1:
            db.session.rollback()
            raise ApiError(402, "insufficient_credits",
                           "Your prepaid credits do not cover another run; top up to "
                           "continue.",
                           details={"required_minor": pricing.to_minor(hold),
                                    "currency": admission.currency})
    db.session.add(UsageHold(execution_id=execution_id, user_id=user_id, period=period,
                             limit_micro=hold if admission.limit_micro is not None else 0,
                             credits_micro=hold if admission.credits else 0, created_at=now))


def spending_limit_reached(admission: Admission, period: str) -> ApiError:
    spent = db.session.scalar(select(SpendPeriod.spent_micro + SpendPeriod.held_micro).where(
        SpendPeriod.user_id == admission.user_id, SpendPeriod.period == period)) or 0
    return ApiError(
        402, "spending_limit_reached",
        "Your monthly spending limit is reached: another run could pass it. Raise the limit "
        "or wait for next month.",
        details={"limit": admission.limit_minor, "used": pricing.to_minor(spent),
                 "requested": pricing.to_minor(admission.hold_micro),
                 "currency": admission.currency, "period": period, "mode": "hard"})


@dataclass(frozen=True)
class Released:
    """A settled hold: what had been held from credits (now back, minus what is debited)."""

    credits_micro: int


def pending_hold(execution_id: uuid.UUID) -> UsageHold | None:
    """The execution's hold, if it has one not yet settled (a read)."""
    return db.session.scalars(select(UsageHold).where(
        UsageHold.execution_id == execution_id, UsageHold.settled_at.is_(None))).first()


def release(execution_id: uuid.UUID) -> Released | None:
    """Release the execution's hold, once."""
    return release_hold(pending_hold(execution_id))


def release_hold(hold: UsageHold | None) -> Released | None:
    """Release ``hold`` once (a conditional UPDATE claims it); only writes."""
    if hold is None:
        return None
    claimed = db.session.execute(
        update(UsageHold).where(UsageHold.id == hold.id, UsageHold.settled_at.is_(None))
        .values(settled_at=clock.now()).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        return None
    if hold.limit_micro:
        db.session.execute(
            update(SpendPeriod).where(SpendPeriod.user_id == hold.user_id,
                                      SpendPeriod.period == hold.period)
            .values(held_micro=SpendPeriod.held_micro - hold.limit_micro)
            .execution_options(synchronize_session=False))
    return Released(hold.credits_micro)


@dataclass(frozen=True)
class Settled:
    debit_micro: int  # what the charge took from the released credits
    balance_micro: int | None  # the balance after, or None when no credits moved


def settle_credits(user_id: uuid.UUID, released: Released | None, debit_micro: int) -> Settled:
    """Return a released credit hold to the balance minus ``debit_micro`` (at most the hold:
    what a run cost beyond its hold is invoiced, never taken below zero)."""
    if released is None or not released.credits_micro:
        return Settled(0, None)
    debit = max(0, min(debit_micro, released.credits_micro))
    balance = db.session.execute(
        update(CustomerAccount).where(CustomerAccount.user_id == user_id)
        .values(credit_held_micro=CustomerAccount.credit_held_micro - released.credits_micro,
                credit_balance_micro=CustomerAccount.credit_balance_micro
                + released.credits_micro - debit)
        .returning(CustomerAccount.credit_balance_micro)
        .execution_options(synchronize_session=False)).scalar_one()
    return Settled(debit, int(balance))


def add_spend(user_id: uuid.UUID, period: str, amount_micro: int) -> int:
    """Add to the customer's settled spend for ``period``; the new total. One statement: an
    insert of the month's row that adds to it when it exists."""
    stmt = _insert(SpendPeriod).values(
        id=uuid.uuid4(), tenant_id=current_id(), user_id=user_id, period=period,
        spent_micro=amount_micro, held_micro=0, notified_pct=0)
    return int(db.session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "user_id", "period"],
            set_={"spent_micro": SpendPeriod.spent_micro + stmt.excluded.spent_micro})
        .returning(SpendPeriod.spent_micro)
        .execution_options(synchronize_session=False)).scalar_one())


def claim_threshold(user_id: uuid.UUID, period: str, pct: int) -> bool:
    """True once per (customer, month, threshold): the caller announces it."""
    return db.session.execute(
        update(SpendPeriod).where(SpendPeriod.user_id == user_id, SpendPeriod.period == period,
                                  SpendPeriod.notified_pct < pct)
        .values(notified_pct=pct).execution_options(synchronize_session=False)).rowcount == 1


def refund_credits(user_id: uuid.UUID, amount_micro: int) -> None:
    """Give back credits a reversed charge had taken."""
    db.session.execute(
        update(CustomerAccount).where(CustomerAccount.user_id == user_id)
        .values(credit_balance_micro=CustomerAccount.credit_balance_micro + amount_micro)
        .execution_options(synchronize_session=False))
