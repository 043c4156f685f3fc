"""The event catalogue: every event type other features may emit, its payload version, the
fields its ``data`` must carry, and an example (docs/webhook-events.md documents the same).

A payload change that removes or renames a field bumps ``version``; adding a field does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    description: str
    required: tuple[str, ...]
    example: dict[str, Any]


_AGENT = "0b9e4d2c-8a1f-4e6b-b3c5-7d9a1e2f4c68"
_CUSTOMER = "3a7d5e1b-2c4f-4a8e-9d6b-1f3e5c7a9b02"
_LICENSE_ID = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"
_EXECUTION = {"execution_id": "6f1c2a9e-3b7d-4c1e-9a0f-5d8e7b6c4a31", "agent_id": _AGENT,
              "agent_name": "Support bot", "user_id": _CUSTOMER,
              "started_at": "2026-11-25T10:00:00Z", "finished_at": "2026-11-25T10:00:04Z",
              "tokens": 812}
_LICENSE = {"license_id": _LICENSE_ID, "key_prefix": "ACME",
            "product_id": "8e1f3a5c-7b9d-4e2f-a1c3-5e7f9b1d3a5c", "user_id": _CUSTOMER,
            "status": "active", "expires_at": "2027-11-25T00:00:00Z"}
_SPEND = {"user_id": _CUSTOMER, "threshold": 80, "period": "2026-11", "spent": 4000,
          "limit": 5000, "currency": "eur", "mode": "soft"}

EVENTS: dict[str, EventType] = {e.name: e for e in (
    EventType("execution.succeeded", 1, "An agent execution finished with an answer.",
              ("execution_id", "agent_id"), {**_EXECUTION, "output": "Hello!"}),
    EventType("execution.failed", 1, "An agent execution failed.",
              ("execution_id", "agent_id"),
              {**_EXECUTION, "error": {"code": "provider_timeout",
                                       "message": "The model provider did not answer."}}),
    EventType("license.created", 1, "A license key was issued.",
              ("license_id",), _LICENSE),
    EventType("license.suspended", 1, "A license was suspended.",
              ("license_id",), {**_LICENSE, "status": "suspended"}),
    EventType("license.revoked", 1, "A license was revoked for good.",
              ("license_id",), {**_LICENSE, "status": "revoked"}),
    EventType("license.expired", 1,
              "A license reached its expiry date (announced once per expiry, within about "
              "five minutes; a renewal announces its new expiry in its turn).",
              ("license_id",), {**_LICENSE, "status": "expired",
                                "expired_at": "2026-11-25T00:00:00Z"}),
    EventType("license.validation_failed", 1,
              "Validations of a genuine license key were refused (expired, suspended, over "
              "quota, …): one event per license and code for each batch of validations "
              "(about every 10 seconds), with how many and when.",
              ("license_id", "reason"),
              {**_LICENSE, "reason": "too_many_machines", "code": "TOO_MANY_MACHINES",
               "count": 3, "fingerprint": "9a4f0c1e7b2d", "first_at": "2026-11-25T10:00:01Z",
               "last_at": "2026-11-25T10:00:04Z"}),
    EventType("machine.activated", 1, "A machine was activated on a license.",
              ("machine_id", "license_id"),
              {"machine_id": "51aa7c3e-9f2b-4d6a-8c1e-3b5d7f9a1c2e", "license_id": _LICENSE_ID,
               "fingerprint": "9a4f0c1e7b2d", "name": "office-pc"}),
    EventType("customer.created", 1, "A customer account was created in the tenant.",
              ("user_id", "email"),
              {"user_id": _CUSTOMER, "email": "ann@example.com", "name": "Ann"}),
    EventType("subscription.updated", 1,
              "A customer's subscription changed (created, renewed, plan change, cancelled).",
              ("subscription_id", "status"),
              {"subscription_id": "8d2f6b1a-4c3e-4f5a-9b7d-2e1c3a5f7b9d", "user_id": _CUSTOMER,
               "plan_id": "pro", "status": "active",
               "current_period_end": "2026-12-25T00:00:00Z"}),
    EventType("quota.exceeded", 1, "A customer went over a quota of their plan.",
              ("user_id", "quota"),
              {"user_id": _CUSTOMER, "quota": "executions_per_month", "limit": 1000,
               "used": 1001}),
    EventType("usage.threshold_reached", 1,
              "A customer's spend this month reached 80 % or 100 % of their spending limit "
              "(once per threshold and month; amounts in minor units of the seller's "
              "currency).",
              ("user_id", "threshold"),
              _SPEND),
    EventType("spending_limit.reached", 1,
              "A customer's spend this month reached their spending limit (a hard limit now "
              "refuses new executions; a soft one only announces).",
              ("user_id", "limit"), {**_SPEND, "threshold": 100, "spent": 5000}),
    EventType("credits.low", 1,
              "A customer's prepaid credits fell below their top-up threshold (once until "
              "they are topped up again).",
              ("user_id", "balance"),
              {"user_id": _CUSTOMER, "balance": 420, "threshold": 500, "currency": "eur",
               "auto_top_up": 2000}),
    EventType("credits.top_up_failed", 1,
              "An automatic top-up of a customer's prepaid credits failed for good (once per "
              "top-up): `reason` is the card's decline code from the payment provider "
              "(`card_declined`, `expired_card`, …) or `payment_requires_action`, "
              "`no_payment_method`, `auto_top_up_off`, `stripe_unavailable`, `stripe_error`, "
              "`worker_stopped`, `dispatch_attempts_exhausted`; `message` says it in words. "
              "No other automatic top-up starts until credits arrive another way.",
              ("user_id", "amount", "currency", "reason"),
              {"top_up_id": "5c7e9a1b-3d5f-4b7a-8c9e-1f3a5b7d9e2c", "user_id": _CUSTOMER,
               "amount": 2000, "currency": "eur", "reason": "card_declined",
               "message": "Your card was declined."}),
)}

# Not subscribable: "send a test event" delivers it to exactly one endpoint.
TEST_EVENT = EventType("webhook.test", 1, "A test event sent from the dashboard or the API.",
                       (), {"message": "This is a test event."})


def event_type(name: str) -> EventType:
    try:
        return EVENTS[name] if name != TEST_EVENT.name else TEST_EVENT
    except KeyError:
        raise ValueError(f"unknown event type {name!r}; known: {', '.join(EVENTS)}") from None
