"""The validation decision: one code per answer, by a documented precedence.

Precedence (the first rule that applies wins; docs/license-keys.md repeats it):

 1. MALFORMED                  the text is not a license key of a known format
 2. NOT_FOUND                  its signing key (kid) is not one of this domain's reseller
 3. BAD_SIGNATURE              the signature does not verify (tampered, or key retired)
 4. NOT_FOUND                  no license of this reseller has the key's license id
 5. REVOKED
 6. BANNED                     the license's owner (a customer) is banned by the reseller
 7. SUSPENDED
 8. EXPIRED                    past expiry + grace, and the policy restricts
 9. OVERDUE                    the policy wants check-ins and the last one is too old
10. PRODUCT_SCOPE_MISMATCH     ``product`` given and not the license's product code
11. POLICY_SCOPE_MISMATCH      ``policy`` given and not the license's policy id
12. FINGERPRINT_SCOPE_REQUIRED the policy requires a fingerprint and none was given
13. TOO_MANY_MACHINES          more live machines than the policy allows (a lowered limit)
14. TOO_MANY_CORES             live machines report more cores than the policy allows
15. NO_MACHINE / NO_MACHINES   fingerprint given, the license has no machines (node-locked
                               / floating)
16. FINGERPRINT_SCOPE_MISMATCH fingerprint given, no machine of the license has it
17. HEARTBEAT_NOT_STARTED      the policy requires heartbeats, the machine never sent one
18. HEARTBEAT_DEAD             the fingerprint's machine missed its heartbeat
19. ENTITLEMENTS_MISSING       ``entitlements`` names one the license does not have
20. USAGE_EXCEEDED             the period's executions reached the policy's maximum
21. VALID

The signature is checked before the license is looked up, so nobody can probe license ids
without a genuine key; a key of another reseller fails at step 2 and is NOT_FOUND, exactly
like a key that was never issued — a domain reveals nothing about other resellers.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from app import clock
from app.extensions import db
from app.licensing import counters, keyformat, signing
from app.licensing.machines import expiry_state, is_dead, seat_limit
from app.licensing.models import License
from app.licensing.snapshot import LicenseSnapshot
from tenants.context import current_id

CODES = ("VALID", "NOT_FOUND", "MALFORMED", "BAD_SIGNATURE", "SUSPENDED", "REVOKED", "EXPIRED",
         "NO_MACHINE", "TOO_MANY_MACHINES", "FINGERPRINT_SCOPE_REQUIRED",
         "FINGERPRINT_SCOPE_MISMATCH", "PRODUCT_SCOPE_MISMATCH", "HEARTBEAT_DEAD",
         "USAGE_EXCEEDED", "BANNED", "OVERDUE", "POLICY_SCOPE_MISMATCH", "TOO_MANY_CORES",
         "NO_MACHINES", "HEARTBEAT_NOT_STARTED", "ENTITLEMENTS_MISSING")

DETAILS = {
    "VALID": "The license is valid.",
    "NOT_FOUND": "No license with this key exists here.",
    "MALFORMED": "This is not a well-formed license key.",
    "BAD_SIGNATURE": "The key's signature does not verify.",
    "SUSPENDED": "The license is suspended.",
    "REVOKED": "The license has been revoked.",
    "EXPIRED": "The license has expired.",
    "NO_MACHINE": "The license has no activated machine.",
    "TOO_MANY_MACHINES": "The license has more machines than its policy allows.",
    "FINGERPRINT_SCOPE_REQUIRED": "This license must be validated with a machine fingerprint.",
    "FINGERPRINT_SCOPE_MISMATCH": "No activated machine of the license has this fingerprint.",
    "PRODUCT_SCOPE_MISMATCH": "The license is not for this product.",
    "HEARTBEAT_DEAD": "The machine missed its heartbeat.",
    "USAGE_EXCEEDED": "The license used all executions of this period.",
    "BANNED": "The license's owner is banned.",
    "OVERDUE": "The license is overdue for its check-in.",
    "POLICY_SCOPE_MISMATCH": "The license is not of this policy.",
    "TOO_MANY_CORES": "The license's machines have more cores than its policy allows.",
    "NO_MACHINES": "The floating license has no activated machine.",
    "HEARTBEAT_NOT_STARTED": "The machine has not sent its first heartbeat.",
    "ENTITLEMENTS_MISSING": "The license lacks an entitlement asked for.",
}


@dataclass
class Resolved:
    """A key checked as far as it goes: a code, and the license once the key is genuine."""

    code: str
    license: License | None = None
    flags: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyCheck:
    """Steps 1-3: ``GENUINE`` with the license id the key names, or the refusal code."""

    code: str
    license_id: uuid.UUID | None = None


GENUINE = "GENUINE"


class _VerifiedKeys:
    """Key texts whose signature verified, per process: (tenant, text) → (kid, license id).

    A signature check is pure (the text, and the public key its kid names, never change), so
    a key validated again skips the decoding and the Ed25519 check; whether its kid is still
    an active key here is asked every time.
    """

    MAX = 10_000

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[uuid.UUID, str], tuple[str, uuid.UUID]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tenant_id: uuid.UUID, text: str) -> tuple[str, uuid.UUID] | None:
        return self._entries.get((tenant_id, text))

    def put(self, tenant_id: uuid.UUID, text: str, kid: str, license_id: uuid.UUID) -> None:
        with self._lock:
            self._entries[(tenant_id, text)] = (kid, license_id)
            if len(self._entries) > self.MAX:
                self._entries.popitem(last=False)


def _verified_keys() -> _VerifiedKeys:
    return current_app.extensions.setdefault("albedo.verified_license_keys", _VerifiedKeys())


def check_key(text: Any, keys: signing.KeySet | None = None) -> KeyCheck:
    """Steps 1-3, without the database: parse, find the kid here, verify the signature."""
    keys = keys or signing.keyset()
    tenant_id = current_id()
    known = _verified_keys().get(tenant_id, text) if isinstance(text, str) else None
    if known is not None and keys.find(known[0]) is not None:
        return KeyCheck(GENUINE, known[1])
    try:
        parsed = keyformat.parse(text)
    except keyformat.MalformedKey:
        return KeyCheck("MALFORMED")
    key = keys.find(parsed.payload.kid)
    if key is None:
        # A retired kid of this tenant verifies nothing any more: report the signature.
        return KeyCheck("BAD_SIGNATURE" if parsed.payload.kid in keys.retired_kids
                        else "NOT_FOUND")
    if not signing.verify_parsed(parsed, key):
        return KeyCheck("BAD_SIGNATURE")
    _verified_keys().put(tenant_id, text, key.kid, parsed.payload.license_id)
    return KeyCheck(GENUINE, parsed.payload.license_id)


def resolve_key(text: Any) -> Resolved:
    """Steps 1-4: a genuine key and its license row (for the machine endpoints; the keys
    are asked of Redis first, so a retirement anywhere is seen at once)."""
    checked = check_key(text, signing.keyset(fresh=True))
    if checked.code != GENUINE:
        return Resolved(checked.code)
    license_ = db.session.get(License, checked.license_id)
    if license_ is None:
        return Resolved("NOT_FOUND")
    return Resolved("VALID", license_)


@dataclass
class Decision:
    """A validation's answer: its code, and the license's snapshot when the key is genuine."""

    code: str
    snapshot: LicenseSnapshot | None = None
    flags: dict[str, Any] = field(default_factory=dict)


def decide(license_: LicenseSnapshot, fingerprint: str | None = None,
           product: str | None = None, now: datetime | None = None,
           executions_used: Callable[[], int] | None = None, *,
           policy_scope: str | None = None,
           entitlements: list[str] | tuple[str, ...] | None = None) -> Decision:
    """Steps 5-21 for a genuine key's license (see the precedence above).

    ``executions_used`` reads the period's count (Redis) only when the policy caps it.
    """
    now = now or clock.now()
    policy = license_.policy
    flags: dict[str, Any] = {}

    def answer(code: str) -> Decision:
        return Decision(code, license_, flags)

    if license_.status == "revoked":
        return answer("REVOKED")
    if license_.owner_banned:
        return answer("BANNED")
    if license_.status == "suspended":
        return answer("SUSPENDED")
    state = expiry_state(license_, now)
    if state == "grace":
        flags["in_grace_period"] = True
    elif state == "expired":
        if policy.expiry_strategy == "restrict":
            return answer("EXPIRED")
        flags["expired"] = True  # allow-with-flag: the client decides what still works
    if check_in_overdue(license_, now):
        return answer("OVERDUE")
    if product and product != license_.product.code:
        return answer("PRODUCT_SCOPE_MISMATCH")
    if policy_scope and policy_scope != str(license_.policy_id):
        return answer("POLICY_SCOPE_MISMATCH")
    fingerprint = (fingerprint or "").strip() or None
    if policy.fingerprint_required and fingerprint is None:
        return answer("FINGERPRINT_SCOPE_REQUIRED")
    machines = license_.machines
    live = [m for m in machines if not is_dead(m, policy, now)]
    limit = seat_limit(policy)
    if limit is not None and len(live) > limit:
        return answer("TOO_MANY_MACHINES")
    if policy.max_cores is not None and sum(m.cores or 0 for m in live) > policy.max_cores:
        return answer("TOO_MANY_CORES")
    if fingerprint is not None:
        if not machines:
            return answer("NO_MACHINES" if policy.floating else "NO_MACHINE")
        machine = next((m for m in machines if m.fingerprint == fingerprint), None)
        if machine is None:
            return answer("FINGERPRINT_SCOPE_MISMATCH")
        if policy.require_heartbeat and not machine.heartbeat_started:
            return answer("HEARTBEAT_NOT_STARTED")
        if is_dead(machine, policy, now):
            return answer("HEARTBEAT_DEAD")
    if entitlements and not set(entitlements) <= set(license_.entitlements):
        return answer("ENTITLEMENTS_MISSING")
    if policy.max_executions_per_period:
        used = (executions_used() if executions_used is not None else
                counters.executions_used(license_.id, policy.execution_period_seconds, now))
        flags["executions_used"] = used
        if used >= policy.max_executions_per_period:
            return answer("USAGE_EXCEEDED")
    return answer("VALID")


def check_in_overdue(license_: Any, now: datetime) -> bool:
    """The policy wants a check-in every interval; counted from the last one, or from the
    license's issue when it never checked in (a new license has one interval to do so)."""
    interval = license_.policy.check_in_interval_seconds
    if not interval:
        return False
    last = license_.last_check_in_at or license_.created_at
    return last is not None and last + timedelta(seconds=interval) < now


def license_view(license_: LicenseSnapshot, now: datetime) -> dict[str, Any]:
    """What a validation answer says about a genuine license (never about a foreign one)."""
    policy = license_.policy
    return {
        "id": str(license_.id),
        "status": license_.status,
        "product": license_.product.code,
        "policy": str(license_.policy_id),
        "entitlements": list(license_.entitlements),
        "expires_at": license_.expires_at.isoformat() if license_.expires_at else None,
        "expiry_strategy": policy.expiry_strategy,
        "grace_period_seconds": policy.grace_period_seconds,
        "max_machines": seat_limit(policy),
        "heartbeat_interval_seconds": policy.heartbeat_interval_seconds,
        "max_executions_per_period": policy.max_executions_per_period,
    }
