"""Announcements after a charge: spending thresholds, the limit reached, credits running low.

Each goes out through the webhook delivery (``integrations.events.emit``) in the charge's
transaction, once: a conditional UPDATE claims the threshold (or the low-credits flag)
before the event is emitted, so concurrent charges never announce the same thing twice.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from app.billing import pricing, spending
from app.billing.rebilling_models import CustomerAccount
from app.extensions import db


def after_charge(user_id: uuid.UUID, period: str, spent_after_micro: int,
                 account: CustomerAccount | None, currency: str) -> None:
    if account is None:
        return
    from app.integrations.events import emit

    limit = account.spending_limit_minor
    if limit:
        ratio = spent_after_micro * 100 // (limit * pricing.MICRO)
        for pct in spending.SOFT_THRESHOLDS:
            if ratio < pct or not spending.claim_threshold(user_id, period, pct):
                continue
            data = {"user_id": str(user_id), "threshold": pct, "period": period,
                    "spent": pricing.to_minor(spent_after_micro), "limit": limit,
                    "currency": currency, "mode": account.limit_mode}
            emit("usage.threshold_reached", data, owner_user_id=user_id)
            if pct == 100:
                emit("spending_limit.reached", data, owner_user_id=user_id)
    if account.credits_enabled and account.auto_topup_below_minor is not None:
        _credits_low(account, currency)


def _credits_low(account: CustomerAccount, currency: str) -> None:
    from app.integrations.events import emit

    threshold = account.auto_topup_below_minor * pricing.MICRO
    balance = db.session.scalar(select(CustomerAccount.credit_balance_micro).where(
        CustomerAccount.id == account.id)) or 0
    if balance >= threshold:
        return
    claimed = db.session.execute(
        update(CustomerAccount).where(CustomerAccount.id == account.id,
                                      CustomerAccount.low_notified.is_(False))
        .values(low_notified=True).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        return
    emit("credits.low", {"user_id": str(account.user_id),
                         "balance": pricing.to_minor(balance),
                         "threshold": account.auto_topup_below_minor, "currency": currency,
                         "auto_top_up": account.auto_topup_amount_minor},
         owner_user_id=account.user_id)
    if account.auto_topup_amount_minor:
        from jobs.enqueue import enqueue_after_commit

        enqueue_after_commit(db.session, "billing.auto_top_up", str(account.user_id),
                             job_id=f"auto-top-up-{account.id}-{balance}")
