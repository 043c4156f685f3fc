"""What a widget does with its key: exchange it for a token, send a message, read the thread.

The key is public, so what it can do is bounded here: the page's Origin must be one of the
key's (browsers set Origin themselves; a script on another site cannot), the token is bound
to that origin, the agent and the visitor, every use of a token reads the key (revocation is
immediate), budgets per visitor and per IP apply, and the key's monthly cap is counted in the
same transaction as the owner's plan quota. Executions run as the key's owner, so usage and
quotas are the owner's; each is recorded with the widget key it ran with (and the license,
for license-gated keys).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.agents import conversations, executions, quotas
from app.agents.models import Agent, Conversation, Execution
from app.agents.service import Caller, get_agent
from app.auth.models import User
from app.errors import ApiError
from app.extensions import db
from app.widget import keys, limits, tokens
from app.widget.config import widget_config
from app.widget.models import WidgetConversation, WidgetExecution, WidgetKey

VISITOR = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_MESSAGE_CHARS = 4000


@dataclass(frozen=True)
class WidgetSession:
    """An authenticated widget request: the live key and its token's claims."""

    key: WidgetKey
    claims: tokens.WidgetClaims


def live_key(text: str) -> WidgetKey:
    key = keys.by_text(text)
    if key is None:
        raise ApiError(404, "widget_key_not_found", "No such widget key on this site.")
    if not key.is_live:
        raise ApiError(403, "widget_key_revoked", "This widget key has been revoked.")
    return key


def origin_allowed(key: WidgetKey, origin: str | None) -> bool:
    normalised = keys.normalise_origin(origin) if origin else None
    return normalised is not None and normalised in key.allowed_origins


def _check_origin(key: WidgetKey, origin: str | None) -> str | None:
    """The page's origin if the key allows it; None only for a license-gated key called by
    a program (no Origin header). Anything else is refused."""
    if origin is None and key.requires_license:
        return None
    if origin is None:
        raise ApiError(403, "origin_required", "Widget requests come from a web page: "
                                               "the Origin header is missing.")
    if not origin_allowed(key, origin):
        raise ApiError(403, "origin_not_allowed", "This widget key is not allowed on this "
                                                  "site.", details={"origin": origin})
    return keys.normalise_origin(origin)


def _visitor(value: Any) -> str:
    if not isinstance(value, str) or not VISITOR.match(value):
        raise ApiError(422, "invalid_visitor_id", "visitor_id is 8 to 64 letters, digits, "
                                                  "dashes or underscores.")
    return value


def _license_id(license_key: str | None, fingerprint: str | None, ip: str) -> uuid.UUID:
    """The license if validation says VALID now; otherwise 403 with the license's code."""
    from app.licensing import hotpath
    from app.licensing.validation import DETAILS
    from tenants.context import current

    if not license_key:
        raise ApiError(401, "license_required", "This agent needs a license key "
                                                "(license_key, and fingerprint if bound).")
    outcome = hotpath.validate(current().id, license_key, fingerprint, None, ip, clock.now())
    if outcome.refused is not None:
        raise ApiError(429, "rate_limited", "Too many license validations; try again later.",
                       headers={"Retry-After": str(outcome.retry_after)})
    code = outcome.decision.code
    if code != "VALID" or outcome.decision.snapshot is None:
        raise _license_refused(code, DETAILS.get(code, "The license is not valid."))
    return outcome.decision.snapshot.id


def _license_refused(code: str, message: str) -> ApiError:
    return ApiError(403, f"license_{code.lower()}", message, details={"license_code": code})


def exchange(key_text: str, origin: str | None, visitor_id: Any, ip: str,
             license_key: str | None = None, fingerprint: str | None = None) -> dict[str, Any]:
    """A short-lived token for this page (origin), visitor and the key's agent."""
    key = live_key(key_text)
    bound_origin = _check_origin(key, origin)
    visitor = _visitor(visitor_id)
    limits.take("ip", ip)
    limits.take("visitor", f"{key.id}:{visitor}")
    license_id = _license_id(license_key, fingerprint, ip) if key.requires_license else None
    token, seconds = tokens.issue(key.id, key.agent_id, visitor, bound_origin, license_id,
                                  widget_config().token_seconds)
    return {"token": token, "token_type": "Bearer", "expires_in": seconds,
            "visitor_id": visitor, "license_id": license_id}


def authenticate(key_text: str, bearer: str | None, origin: str | None) -> WidgetSession:
    """The key (still live) and the token's claims, if the token is for this key and page."""
    key = live_key(key_text)
    if not bearer:
        raise ApiError(401, "unauthenticated", "Send 'Authorization: Bearer <widget token>'.",
                       headers={"WWW-Authenticate": 'Bearer realm="widget"'})
    try:
        claims = tokens.decode(bearer)
    except tokens.WidgetTokenError:
        raise ApiError(401, "invalid_token", "The widget token is invalid or expired; "
                                             "exchange the key for a new one.",
                       headers={"WWW-Authenticate": 'Bearer realm="widget"'}) from None
    if claims.widget_key_id != key.id or claims.agent_id != key.agent_id:
        raise ApiError(401, "invalid_token", "The widget token is for another key.")
    normalised = keys.normalise_origin(origin) if origin else None
    if normalised != claims.origin:
        raise ApiError(403, "origin_mismatch", "The widget token was issued to another site.")
    if normalised is not None and normalised not in key.allowed_origins:
        raise ApiError(403, "origin_not_allowed", "This widget key is no longer allowed on "
                                                  "this site.")
    if claims.license_id is not None:
        _license_still_valid(claims.license_id)
    return WidgetSession(key, claims)


def _license_still_valid(license_id: uuid.UUID) -> None:
    """A suspension or revocation ends the license's tokens at once (expiry and machines
    were checked at the exchange, at most a token's lifetime ago)."""
    from app.licensing.models import License
    from app.licensing.validation import DETAILS

    row = db.session.get(License, license_id)
    code = ("NOT_FOUND" if row is None else
            {"suspended": "SUSPENDED", "revoked": "REVOKED"}.get(row.status))
    if code is not None:
        raise _license_refused(code, DETAILS[code])


def _caller(session: WidgetSession) -> Caller:
    owner = db.session.get(User, session.key.owner_id)
    if owner is None or not owner.is_active:
        raise ApiError(403, "widget_key_owner_inactive", "This widget is not available.")
    return Caller(owner.id, owner.role, license_id=session.claims.license_id)


def _visitor_conversation(session: WidgetSession) -> WidgetConversation | None:
    return db.session.scalars(select(WidgetConversation).where(
        WidgetConversation.widget_key_id == session.key.id,
        WidgetConversation.visitor_id == session.claims.visitor_id)).first()


def send(session: WidgetSession, text: Any, ip: str) -> Execution:
    """Start the agent on the visitor's message, continuing the visitor's conversation."""
    if not isinstance(text, str) or not text.strip():
        raise ApiError(422, "invalid_input", "The message is empty.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ApiError(413, "input_too_long", f"A message is at most {MAX_MESSAGE_CHARS} "
                                              "characters.")
    limits.take("ip", ip)
    limits.take("visitor", f"{session.key.id}:{session.claims.visitor_id}")
    caller = _caller(session)
    agent: Agent = get_agent(caller, session.key.agent_id)
    thread = _visitor_conversation(session)
    db.session.commit()  # the reads' snapshot ends before the first write
    if session.key.monthly_cap is not None:
        # In the transaction start_execution commits: refused there, this rolls back too.
        quotas.reserve(caller.user_id, scopes=[quotas.Scope(
            f"widget_key:{session.key.id}", "widget_key", session.key.monthly_cap)])
    execution, _ = executions.start_execution(
        caller, agent, input=text, source="widget",
        conversation_id=str(thread.conversation_id) if thread else None)
    now = clock.now()
    db.session.add(WidgetExecution(execution_id=execution.id, widget_key_id=session.key.id,
                                   visitor_id=session.claims.visitor_id,
                                   origin=session.claims.origin,
                                   license_id=session.claims.license_id, created_at=now))
    if thread is None and execution.conversation_id is not None:
        db.session.add(WidgetConversation(widget_key_id=session.key.id,
                                          visitor_id=session.claims.visitor_id,
                                          conversation_id=execution.conversation_id,
                                          created_at=now))
    try:
        db.session.commit()
    except IntegrityError:  # the visitor's other tab started the thread at the same moment
        db.session.rollback()
        db.session.add(WidgetExecution(execution_id=execution.id,
                                       widget_key_id=session.key.id,
                                       visitor_id=session.claims.visitor_id,
                                       origin=session.claims.origin,
                                       license_id=session.claims.license_id, created_at=now))
        db.session.commit()
    return execution


def history(session: WidgetSession) -> dict[str, Any]:
    """The visitor's conversation so far (oldest first), for a page that was reloaded."""
    thread = _visitor_conversation(session)
    conversation = (db.session.get(Conversation, thread.conversation_id)
                    if thread is not None else None)
    if conversation is None:
        return {"conversation_id": None, "messages": []}
    return {"conversation_id": conversation.id,
            "messages": [{"role": m.role, "content": m.content, "created_at": m.created_at}
                         for m in conversations.messages_of(conversation)]}


def widget_execution(session: WidgetSession, execution_id: uuid.UUID) -> Execution:
    """An execution this visitor started with this key (else 404)."""
    row = db.session.scalars(select(Execution).join(
        WidgetExecution, WidgetExecution.execution_id == Execution.id).where(
        Execution.id == execution_id, WidgetExecution.widget_key_id == session.key.id,
        WidgetExecution.visitor_id == session.claims.visitor_id)).first()
    if row is None:
        raise ApiError(404, "execution_not_found", "No such execution.")
    return row


def public_config(key: WidgetKey) -> dict[str, Any]:
    """What the widget shows before any token: the reseller's branding and the key's."""
    from tenants.context import current

    tenant = current()
    look = key.appearance or {}
    agent = db.session.get(Agent, key.agent_id)
    return {
        "name": look.get("name") or (agent.name if agent else tenant.display_name),
        "brand": tenant.display_name,
        "primary_color": look.get("primary_color") or tenant.primary_color,
        "accent_color": look.get("accent_color") or tenant.accent_color,
        "logo_url": look.get("logo_url") or tenant.logo_url,
        "greeting": look.get("greeting") or "Hi! How can I help?",
        "placeholder": look.get("placeholder") or "Type your message…",
        "requires_license": key.requires_license,
    }
