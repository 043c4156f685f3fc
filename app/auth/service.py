"""Users inside the current tenant: create, find, authenticate."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func, select

from app import clock
from app.auth.models import ROLES, User
from app.auth.passwords import hash_password, needs_rehash, password_problem, verify_password
from app.billing.limits import ensure_room
from app.extensions import db
from tenants.context import current

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserValidationError(ValueError):
    def __init__(self, details: dict[str, str]):
        self.details = details
        super().__init__("; ".join(f"{k}: {v}" for k, v in details.items()))


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def roles_allowed_in_current_tenant() -> tuple[str, ...]:
    # Platform operators live on the platform tenant; resellers' tenants hold staff and
    # their end customers.
    return ("ADMIN",) if current().is_platform else ("RESELLER", "USER")


def create_user(email: str, password: str | None, role: str = "USER", name: str = "",
                verified: bool = False) -> User:
    email = normalise_email(email)
    problems: dict[str, str] = {}
    if not EMAIL.match(email) or len(email) > 254:
        problems["email"] = "must be an email address"
    if role not in ROLES:
        problems["role"] = f"must be one of {', '.join(ROLES)}"
    elif role not in roles_allowed_in_current_tenant():
        problems["role"] = (f"{role} is not allowed in this tenant; allowed: "
                            f"{', '.join(roles_allowed_in_current_tenant())}")
    if password is not None and (why := password_problem(password)):
        problems["password"] = why
    if not problems and find_by_email(email) is not None:
        problems["email"] = "is already registered"
    if problems:
        raise UserValidationError(problems)
    if role == "USER":
        ensure_room("customers")  # end customers count against their reseller's plan
    user = User(email=email, name=(name or "").strip(), role=role,
                password_hash=hash_password(password) if password else None,
                email_verified_at=clock.now() if verified else None)
    db.session.add(user)
    db.session.flush()
    return user


def find_by_email(email: str) -> User | None:
    return db.session.scalars(
        select(User).where(func.lower(User.email) == normalise_email(email))).first()


def get_user(user_id: uuid.UUID) -> User | None:
    return db.session.get(User, user_id)


def authenticate(email: str, password: str) -> User | None:
    """The active user of the current tenant with this email and password, else None."""
    user = find_by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = clock.now()
    return user


def set_password(user: User, password: str) -> None:
    if why := password_problem(password):
        raise UserValidationError({"password": why})
    user.password_hash = hash_password(password)
    user.session_version += 1  # every other session of this user ends
