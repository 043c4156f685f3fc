"""Products, policies and licenses: creating and changing them. No request objects here.

Object rules: a RESELLER manages its whole tenant; a USER sees only licenses it owns
(``visible_licenses``). Tenant isolation itself is the ORM guard's job.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select

from app import clock
from app.billing.limits import ensure_room
from app.errors import ApiError
from app.extensions import db
from app.licensing import keyformat, signing
from app.licensing.models import EXPIRY_STRATEGIES, License, Policy, Product
from tenants.context import current

CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _invalid(details: dict[str, str]) -> ApiError:
    return ApiError(422, "validation_failed", "Some fields are invalid.",
                    details={"fields": details})


# --- products -----------------------------------------------------------------------------

def create_product(name: str, code: str, agent_ids: list[str] | None = None,
                   entitlements: list[str] | None = None) -> Product:
    problems: dict[str, str] = {}
    if not (name or "").strip():
        problems["name"] = "cannot be empty"
    if not CODE.match(code or ""):
        problems["code"] = "lowercase letters, digits, dots, dashes or underscores"
    elif db.session.scalars(select(Product.id).where(Product.code == code)).first():
        problems["code"] = "is already used by another product"
    if problems:
        raise _invalid(problems)
    product = Product(name=name.strip(), code=code, agent_ids=list(agent_ids or []),
                      entitlements=sorted(set(entitlements or [])))
    db.session.add(product)
    db.session.flush()
    return product


def product_by_id(product_id: Any) -> Select:
    """The tenant's product with this id (``product_id`` may be a bound parameter: the read
    lane compiles this once, app/licensing/lane_reads.py)."""
    return select(Product).where(Product.id == product_id)


def get_product(product_id: uuid.UUID) -> Product:
    product = db.session.scalars(product_by_id(product_id)).first()
    if product is None:
        raise ApiError(404, "product_not_found", "No product has this id.")
    return product


# --- policies -----------------------------------------------------------------------------

@dataclass
class PolicyInput:
    name: str
    duration_days: int | None = None
    expiry_strategy: str = "restrict"
    grace_period_seconds: int = 0
    max_machines: int | None = None
    floating: bool = False
    heartbeat_interval_seconds: int | None = None
    max_executions_per_period: int | None = None
    execution_period_seconds: int = 30 * 24 * 3600
    fingerprint_required: bool = False
    entitlements: list[str] | None = None
    require_heartbeat: bool = False
    check_in_interval_seconds: int | None = None
    max_cores: int | None = None


INT32_MAX = 2_147_483_647  # the columns are PostgreSQL integers
ENTITLEMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def _entitlement_problem(values: list[str] | None) -> str | None:
    if values and not all(isinstance(v, str) and ENTITLEMENT.match(v) for v in values):
        return "codes of letters, digits, '.', '_', ':' or '-' (at most 64 characters)"
    return None


def _check_policy(data: PolicyInput) -> None:
    problems: dict[str, str] = {}
    if not (data.name or "").strip():
        problems["name"] = "cannot be empty"
    if data.expiry_strategy not in EXPIRY_STRATEGIES:
        problems["expiry_strategy"] = "must be restrict or allow"
    for field_name in ("duration_days", "max_machines", "heartbeat_interval_seconds",
                       "max_executions_per_period", "check_in_interval_seconds", "max_cores"):
        value = getattr(data, field_name)
        if value is not None and value < 1:
            problems[field_name] = "must be at least 1 (or empty for no limit)"
        elif value is not None and value > INT32_MAX:
            problems[field_name] = "is too large"
    for field_name in ("grace_period_seconds", "execution_period_seconds"):
        if getattr(data, field_name) > INT32_MAX:
            problems[field_name] = "is too large"
    if not data.floating and data.max_machines not in (None, 1):
        problems["max_machines"] = "a node-locked policy holds one machine; make it floating"
    if data.grace_period_seconds < 0:
        problems["grace_period_seconds"] = "cannot be negative"
    if data.execution_period_seconds < 60:
        problems["execution_period_seconds"] = "must be at least 60"
    if data.require_heartbeat and not data.heartbeat_interval_seconds:
        problems["require_heartbeat"] = "needs a heartbeat interval"
    entitlement_problem = _entitlement_problem(data.entitlements)
    if entitlement_problem:
        problems["entitlements"] = entitlement_problem
    if problems:
        raise _invalid(problems)
    data.entitlements = sorted(set(data.entitlements or []))


def create_policy(product: Product, data: PolicyInput) -> Policy:
    _check_policy(data)
    policy = Policy(product_id=product.id, **vars(data))
    db.session.add(policy)
    db.session.flush()
    return policy


def update_policy(policy: Policy, data: PolicyInput) -> Policy:
    _check_policy(data)
    for name, value in vars(data).items():
        setattr(policy, name, value)
    return policy


def get_policy(policy_id: uuid.UUID) -> Policy:
    policy = db.session.get(Policy, policy_id)
    if policy is None:
        raise ApiError(404, "policy_not_found", "No policy has this id.")
    return policy


# --- licenses -----------------------------------------------------------------------------

def _whole_seconds(moment: datetime | None) -> datetime | None:
    # The key carries whole seconds; the row must say exactly what the key says.
    return moment.replace(microsecond=0) if moment else None


def _sign(license_: License, key: signing.LoadedKey | None = None) -> None:
    key = key or signing.signer()
    payload = keyformat.KeyPayload(version=keyformat.FORMAT_VERSION, kid=key.kid,
                                   license_id=license_.id, expires_at=license_.expires_at)
    license_.key = signing.sign_license_key(current().license_key_prefix, payload, key)
    license_.kid = key.kid


def _audit(action: str, license_: License, **details: Any) -> None:
    from app.auth import audit

    audit.record(action, **audit.acting(), target_type="license", target_id=license_.id,
                 **details)


def emit_license_event(event: str, license_: License, **extra: Any) -> None:
    """Emit a license.* event with the license's common fields (and ``extra`` ones)."""
    from app.integrations.events import emit

    status = "expired" if event == "license.expired" else license_.status
    emit(event, {"license_id": str(license_.id), "key_prefix": current().license_key_prefix,
                 "product_id": str(license_.product_id),
                 "user_id": str(license_.owner_id) if license_.owner_id else None,
                 "customer_email": license_.customer_email, "status": status,
                 "expires_at": license_.expires_at, **extra}, owner_user_id=license_.owner_id)


def issue_license(policy: Policy, *, name: str = "", customer_email: str | None = None,
                  owner_id: uuid.UUID | None = None, expires_at: datetime | None = None,
                  bulk_issue_id: uuid.UUID | None = None,
                  key: signing.LoadedKey | None = None,
                  entitlements: list[str] | None = None) -> License:
    """Issue one license under ``policy``; its expiry defaults to now + the policy's duration."""
    email = (customer_email or "").strip().lower() or None
    if email and not EMAIL.match(email):
        raise _invalid({"customer_email": "must be an email address"})
    if _entitlement_problem(entitlements):
        raise _invalid({"entitlements": _entitlement_problem(entitlements)})
    if bulk_issue_id is None:  # a bulk issue reserved its room when it started
        ensure_room("licenses")
    if expires_at is None and policy.duration_days:
        expires_at = clock.now() + timedelta(days=policy.duration_days)
    license_ = License(id=uuid.uuid4(), policy_id=policy.id, product_id=policy.product_id,
                       name=(name or "").strip()[:120], customer_email=email, owner_id=owner_id,
                       expires_at=_whole_seconds(expires_at), status="active",
                       bulk_issue_id=bulk_issue_id,
                       entitlements=sorted(set(entitlements or [])))
    _sign(license_, key)
    db.session.add(license_)
    if bulk_issue_id is None:
        # One event and audit entry per license sold; a bulk run of thousands is one batch
        # (audited when it starts), not a flood.
        emit_license_event("license.created", license_)
        _audit("license_issued", license_, policy_id=str(policy.id))
    return license_


def get_license(license_id: uuid.UUID) -> License:
    license_ = db.session.get(License, license_id)
    if license_ is None:
        raise ApiError(404, "license_not_found", "No license has this id.")
    return license_


def suspend(license_: License) -> License:
    if license_.status == "revoked":
        raise ApiError(409, "license_revoked", "A revoked license cannot be suspended.")
    license_.status = "suspended"
    license_.suspended_at = clock.now()
    emit_license_event("license.suspended", license_)
    _audit("license_suspended", license_)
    return license_


def reinstate(license_: License) -> License:
    if license_.status == "revoked":
        raise ApiError(409, "license_revoked", "A revoked license cannot be reinstated.")
    license_.status = "active"
    license_.suspended_at = None
    _audit("license_reinstated", license_)
    return license_


def revoke(license_: License) -> License:
    """Final: a revoked license never validates again."""
    if license_.status != "revoked":
        license_.status = "revoked"
        license_.revoked_at = clock.now()
        emit_license_event("license.revoked", license_)
        _audit("license_revoked", license_)
    return license_


def renew(license_: License) -> License:
    """Extend by the policy's duration, from the expiry or from now if already past."""
    if not license_.policy.duration_days:
        raise ApiError(409, "perpetual_license", "This license's policy has no duration.")
    base = max(license_.expires_at or clock.now(), clock.now())
    return extend(license_, base + timedelta(days=license_.policy.duration_days),
                  action="license_renewed")


def extend(license_: License, expires_at: datetime | None,
           action: str = "license_extended") -> License:
    """Set a new expiry (None: never) and re-sign the key so offline checks see it too.

    The old key text keeps validating online (the row's expiry is authoritative); offline
    verifiers see the new expiry only in the re-issued key.
    """
    if license_.status == "revoked":
        raise ApiError(409, "license_revoked", "A revoked license cannot be extended.")
    previous = license_.expires_at
    license_.expires_at = _whole_seconds(expires_at)
    if license_.expires_at is None or license_.expires_at > clock.now():
        license_.expiry_announced_at = None  # the new expiry is announced when it comes
    _sign(license_)
    _audit(action, license_, previous_expires_at=previous and previous.isoformat(),
           expires_at=license_.expires_at and license_.expires_at.isoformat())
    return license_


def check_in(license_: License) -> License:
    """An agent's check-in (policies with a check-in interval answer OVERDUE without one)."""
    from app.licensing.machines import require_usable

    now = clock.now()
    require_usable(license_, now)
    license_.last_check_in_at = now
    return license_


def next_check_in(license_: License) -> datetime | None:
    interval = license_.policy.check_in_interval_seconds
    if not interval:
        return None
    return (license_.last_check_in_at or license_.created_at) + timedelta(seconds=interval)


def attach_customer(license_: License, email: str | None) -> License:
    email = (email or "").strip().lower() or None
    if email and not EMAIL.match(email):
        raise _invalid({"customer_email": "must be an email address"})
    if email != license_.customer_email:
        _audit("license_customer_changed", license_, customer_email=email)
    license_.customer_email = email
    return license_


def claim_pending(user) -> int:
    """Give a customer the licenses sold to its email before its account existed.

    Only for a verified email: otherwise signing up with someone else's address would
    collect their licenses. Called when the customer lists its licenses (page or API).
    """
    if user.email_verified_at is None:
        return 0
    rows = list(db.session.scalars(select(License).where(
        License.customer_email == user.email.strip().lower(), License.owner_id.is_(None))))
    for license_ in rows:
        license_.owner_id = user.id
    return len(rows)


def search_licenses(query: str | None = None, status: str | None = None,
                    product_id: uuid.UUID | None = None,
                    owner_id: uuid.UUID | None = None) -> Select:
    """A statement for licenses matching the filters (callers paginate it)."""
    stmt = select(License)
    if query:
        needle = f"%{query.strip().lower()}%"
        clauses = [func.lower(License.name).like(needle),
                   License.customer_email.like(needle),
                   func.upper(License.key) == query.strip().upper()]
        with contextlib.suppress(ValueError):
            clauses.append(License.id == uuid.UUID(query.strip()))
        stmt = stmt.where(or_(*clauses))
    if status:
        stmt = stmt.where(License.status == status)
    if product_id:
        stmt = stmt.where(License.product_id == product_id)
    if owner_id:
        stmt = stmt.where(License.owner_id == owner_id)
    return stmt
