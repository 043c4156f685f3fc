"""Widget keys: create, list, edit, revoke (the logic; no Flask request objects here).

Object rules, like the rest of the tenant: a customer (USER) makes keys for its own agents or
its reseller's templates, owned by itself; reseller staff (RESELLER) see every key of the
tenant and may make one owned by any active customer of theirs (that customer's usage) or by
themselves (the reseller's). Another customer's key is a 404, as if it did not exist.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, select

from app import clock
from app.agents.service import Caller, get_agent, published_version
from app.auth.models import User
from app.errors import ApiError
from app.extensions import db
from app.widget.models import WidgetKey

PREFIX = "pk_"
MAX_ORIGINS = 20
HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
APPEARANCE_LIMITS = {"name": 60, "greeting": 300, "placeholder": 100, "logo_url": 500}


def new_key_text() -> str:
    return PREFIX + secrets.token_urlsafe(24)


def looks_like_key(text: str) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX) and 8 < len(text) <= 64


def normalise_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None if it is not
    an origin (a path, a query, credentials or a wildcard make it not one)."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username \
            or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    host = parts.hostname.lower()
    if "*" in host:
        return None
    if host.count(":"):  # IPv6 literal
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def clean_origins(values: list[str]) -> list[str]:
    if len(values) > MAX_ORIGINS:
        raise _invalid({"allowed_origins": f"at most {MAX_ORIGINS} origins"})
    cleaned: list[str] = []
    for value in values:
        origin = normalise_origin(value)
        if origin is None:
            raise _invalid({"allowed_origins": f"{value!r} is not an origin such as "
                                               "https://shop.example or http://localhost:8080"})
        if origin not in cleaned:
            cleaned.append(origin)
    return cleaned


def clean_appearance(values: dict[str, Any]) -> dict[str, Any]:
    problems: dict[str, str] = {}
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        if name in ("primary_color", "accent_color"):
            if not HEX.match(str(value)):
                problems[name] = "must be a hex colour such as #1a2b3c"
        elif name == "logo_url" and not str(value).startswith(("https://", "/")):
            problems[name] = "must be an https:// URL or a path on this site"
        if name in APPEARANCE_LIMITS and len(str(value)) > APPEARANCE_LIMITS[name]:
            problems[name] = f"at most {APPEARANCE_LIMITS[name]} characters"
        cleaned[name] = str(value)
    if problems:
        raise _invalid(problems)
    return cleaned


def _invalid(fields: dict[str, str]) -> ApiError:
    return ApiError(422, "validation_failed", "The widget key could not be saved.",
                    {"fields": fields})


def _owner_for(caller: Caller, owner_id: uuid.UUID | None) -> User:
    if owner_id is None or owner_id == caller.user_id:
        owner = db.session.get(User, caller.user_id)
    elif caller.sees_whole_tenant:
        owner = db.session.get(User, owner_id)
        if owner is None or owner.role != "USER":
            raise ApiError(404, "user_not_found", "No such customer.")
    else:
        raise ApiError(403, "forbidden", "A customer's widget keys are its own.")
    if owner is None or not owner.is_active:
        raise ApiError(404, "user_not_found", "No such customer.")
    return owner


def create_key(caller: Caller, *, name: str, agent_id: uuid.UUID,
               allowed_origins: list[str], appearance: dict[str, Any] | None = None,
               monthly_cap: int | None = None, requires_license: bool = False,
               owner_id: uuid.UUID | None = None) -> WidgetKey:
    from app.widget.config import widget_config

    if not (name or "").strip():
        raise _invalid({"name": "cannot be empty"})
    owner = _owner_for(caller, owner_id)
    # The owner must be able to run the agent: its own, or its reseller's template.
    agent = get_agent(Caller(owner.id, owner.role), agent_id)
    published_version(agent)  # a key for an agent nobody can run helps no one
    origins = clean_origins(allowed_origins)
    if not origins and not requires_license:
        raise _invalid({"allowed_origins": "give at least one origin (license-gated keys "
                                           "may have none: programs send no Origin)"})
    key = WidgetKey(key=new_key_text(), name=name.strip(), agent_id=agent.id,
                    owner_id=owner.id, created_by=caller.user_id, allowed_origins=origins,
                    appearance=clean_appearance(appearance or {}),
                    monthly_cap=monthly_cap if monthly_cap is not None
                    else widget_config().default_monthly_cap,
                    requires_license=requires_license)
    db.session.add(key)
    db.session.flush()
    return key


def visible_keys(caller: Caller) -> Select[tuple[WidgetKey]]:
    stmt = select(WidgetKey)
    if not caller.sees_whole_tenant:
        stmt = stmt.where(WidgetKey.owner_id == caller.user_id)
    return stmt


def get_key(caller: Caller, key_id: uuid.UUID | str) -> WidgetKey:
    try:
        ident = uuid.UUID(str(key_id))
    except ValueError:
        raise ApiError(404, "widget_key_not_found", "No such widget key.") from None
    key = db.session.scalars(visible_keys(caller).where(WidgetKey.id == ident)).first()
    if key is None:
        raise ApiError(404, "widget_key_not_found", "No such widget key.")
    return key


def update_key(key: WidgetKey, changes: dict[str, Any]) -> WidgetKey:
    if key.revoked_at is not None:
        raise ApiError(409, "widget_key_revoked", "A revoked key cannot be changed.")
    if changes.get("name") is not None:
        if not changes["name"].strip():
            raise _invalid({"name": "cannot be empty"})
        key.name = changes["name"].strip()
    if changes.get("allowed_origins") is not None:
        origins = clean_origins(changes["allowed_origins"])
        if not origins and not key.requires_license:
            raise _invalid({"allowed_origins": "give at least one origin"})
        key.allowed_origins = origins
    if changes.get("appearance") is not None:
        key.appearance = clean_appearance(changes["appearance"])
    if "monthly_cap" in changes:
        key.monthly_cap = changes["monthly_cap"]
    return key


def revoke_key(key: WidgetKey) -> WidgetKey:
    if key.revoked_at is None:
        key.revoked_at = clock.now()
    return key


def by_text(text: str) -> WidgetKey | None:
    """A key of the current tenant by its publishable text (another tenant's is unknown)."""
    if not looks_like_key(text):
        return None
    return db.session.scalars(select(WidgetKey).where(WidgetKey.key == text)).first()
