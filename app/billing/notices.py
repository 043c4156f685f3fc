"""Announcements after a charge: spending thresholds, the limit reached, credits running low.

Each goes out through the webhook delivery (``integrations.events.emit``) in the charge's
transaction, once: a conditional UPDATE claims the threshold (or the low-credits flag)
before the event is emitted, so concurrent charges never announce the same thing twice.

Who is owed them is read before the charge writes anything (``prepare``): on SQLite the
transaction's first write holds the database's only write lock until the commit, and every
worker's claim, first token and outcome waits for it (tests/test_agents_write_lock.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import update

from app.billing import pricing, spending
from app.billing.rebilling_models import CustomerAccount
from app.extensions import db

LIMIT_EVENTS = ("usage.threshold_reached", "spending_limit.reached")
CREDITS_EVENTS = ("credits.low",)

# (period, spent after the charge, credit balance after it or None when unchanged)
Announce = Callable[[str, int, "int | None"], None]


def prepare(user_id: uuid.UUID, account: CustomerAccount | None,
            currency: str) -> Announce | None:
    """Read what announcing after a charge needs (only for a customer with a limit or a
    low-credits threshold); returns the writes, to run once the charge is known."""
    if account is None:
        return None
    limit = account.spending_limit_minor
    watches_credits = account.credits_enabled and account.auto_topup_below_minor is not None
    if not limit and not watches_credits:
        return None
    from app.integrations.events import recipients

    types = (LIMIT_EVENTS if limit else ()) + (CREDITS_EVENTS if watches_credits else ())
    ahead = recipients(types, owner_user_id=user_id)
    # What the account said when read: the writes below must not read it again.
    facts = {"account_id": account.id, "limit": limit, "mode": account.limit_mode,
             "balance": account.credit_balance_micro,
             "below": account.auto_topup_below_minor,
             "top_up": account.auto_topup_amount_minor}

    def announce(period: str, spent_after_micro: int, balance_micro: int | None) -> None:
        from app.integrations.events import emit

        if limit:
            ratio = spent_after_micro * 100 // (limit * pricing.MICRO)
            for pct in spending.SOFT_THRESHOLDS:
                if ratio < pct or not spending.claim_threshold(user_id, period, pct):
                    continue
                data = {"user_id": str(user_id), "threshold": pct, "period": period,
                        "spent": pricing.to_minor(spent_after_micro), "limit": limit,
                        "currency": currency, "mode": facts["mode"]}
                emit("usage.threshold_reached", data, owner_user_id=user_id, ahead=ahead)
                if pct == 100:
                    emit("spending_limit.reached", data, owner_user_id=user_id, ahead=ahead)
        if watches_credits:
            balance = facts["balance"] if balance_micro is None else balance_micro
            _credits_low(facts, user_id, balance, currency, ahead)

    return announce


def _credits_low(facts: dict, user_id: uuid.UUID, balance: int, currency: str,
                 ahead) -> None:
    from app.integrations.events import emit

    if balance >= facts["below"] * pricing.MICRO:
        return
    claimed = db.session.execute(
        update(CustomerAccount).where(CustomerAccount.id == facts["account_id"],
                                      CustomerAccount.low_notified.is_(False))
        .values(low_notified=True).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        return
    emit("credits.low", {"user_id": str(user_id), "balance": pricing.to_minor(balance),
                         "threshold": facts["below"], "currency": currency,
                         "auto_top_up": facts["top_up"]},
         owner_user_id=user_id, ahead=ahead)
    if facts["top_up"]:
        from app.billing.auto_top_ups import open_for

        # Its row in this transaction, its job after the commit (durable work).
        open_for(facts["account_id"], user_id, facts["top_up"], balance, currency)
