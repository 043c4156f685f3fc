"""Invitations: a reseller's staff invite their team and customers; the platform operator
invites a new reseller's owner. One service for the pages and the API.

An invitation is an expiring, single-use set-password link, sent through the email service
in the inviting tenant's branding. The link carries a random token; only its SHA-256 is
stored, so the table alone lets nobody in. Accepting creates the account (verified: the link
reached the mailbox), marks the invitation used, and is audited. Re-sending mints a new
token (the old link dies); revoking kills it.

Everything acts in the current tenant: the isolation guard keeps one reseller's invitations
away from another's. The platform operator's calls run inside ``tenants.activate`` of the
reseller (see tenants.platform_people).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import select

from app import clock
from app.auth import audit
from app.auth.models import INVITATION_ROLES, Invitation, User
from app.auth.service import (
    EMAIL,
    UserValidationError,
    create_user,
    find_by_email,
    normalise_email,
)
from app.billing.limits import ensure_room
from app.email.service import send_email
from app.errors import ApiError
from app.extensions import db
from tenants.context import current
from tenants.urls import tenant_url_for

INVITE_TTL = timedelta(days=7)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(invitation: Invitation) -> str:
    token = secrets.token_urlsafe(32)
    invitation.token_hash = _hash(token)
    invitation.sent_at = clock.now()
    invitation.expires_at = invitation.sent_at + INVITE_TTL
    return token


def _send(invitation: Invitation, token: str, owner: bool = False) -> None:
    send_email(invitation.email, "invitation", {
        "name": invitation.name, "role": invitation.role, "owner": owner,
        "invited_by": invitation.invited_by_label,
        "accept_url": tenant_url_for("people.accept_invitation", token=token),
        "ttl_days": INVITE_TTL.days})


def invitations_query(state: str | None = "pending"):
    """The tenant's invitations; ``state`` pending (default: not accepted nor revoked, expired
    included so they can be sent again) or None (all)."""
    stmt = select(Invitation)
    if state == "pending":
        stmt = stmt.where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
    return stmt


def get(invitation_id: uuid.UUID) -> Invitation:
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None:
        raise ApiError(404, "not_found", "No such invitation.")
    return invitation


def invite(email: str, role: str, *, name: str = "", actor: User | None = None,
           actor_label: str = "", owner: bool = False) -> Invitation:
    """Invite ``email`` to this tenant as ``role`` and email them the link.

    ``actor`` None: the platform operator (``actor_label`` says so in the reseller's log).
    An email that already has an account here is refused (409); an open invitation for the
    same email is replaced, so only the newest link works.
    """
    email = normalise_email(email)
    problems: dict[str, str] = {}
    if not EMAIL.match(email) or len(email) > 254:
        problems["email"] = "must be an email address"
    if role not in INVITATION_ROLES or current().is_platform:
        problems["role"] = "must be team (RESELLER) or customer (USER)"
    if len(name or "") > 120:
        problems["name"] = "must be at most 120 characters"
    if problems:
        raise ApiError(422, "validation_failed", "The invitation could not be sent.",
                       {"fields": problems})
    if find_by_email(email) is not None:
        raise ApiError(409, "already_member", f"{email} already has an account here.",
                       {"fields": {"email": "already has an account here"}})
    if role == "USER":
        ensure_room("customers")  # told now rather than when the customer accepts
    now = clock.now()
    for older in db.session.scalars(invitations_query().where(Invitation.email == email)):
        older.revoked_at = now
    label = actor.email if actor is not None else (actor_label or "platform operator")
    invitation = Invitation(email=email, name=(name or "").strip(), role=role,
                            invited_by_id=actor.id if actor is not None else None,
                            invited_by_label=label, send_count=1)
    token = _new_token(invitation)
    db.session.add(invitation)
    db.session.flush()
    _send(invitation, token, owner=owner)
    audit.record("invitation_sent", actor_user_id=actor.id if actor else None,
                 actor_label=label, target_type="invitation", target_id=invitation.id,
                 email=email, role=role)
    return invitation


def _open(invitation: Invitation) -> None:
    state = invitation.state(clock.now())
    if state in ("accepted", "revoked"):
        raise ApiError(409, f"invitation_{state}", f"This invitation was already {state}.")


def resend(invitation: Invitation, *, actor: User | None = None,
           actor_label: str = "") -> Invitation:
    """A fresh link (and expiry) for a pending or expired invitation; the old link dies."""
    _open(invitation)
    token = _new_token(invitation)
    invitation.send_count += 1
    _send(invitation, token, owner=invitation.invited_by_id is None
          and invitation.role == "RESELLER")
    audit.record("invitation_resent", actor_user_id=actor.id if actor else None,
                 actor_label=actor.email if actor else (actor_label or "platform operator"),
                 target_type="invitation", target_id=invitation.id, email=invitation.email)
    return invitation


def revoke(invitation: Invitation, *, actor: User | None = None,
           actor_label: str = "") -> Invitation:
    _open(invitation)
    invitation.revoked_at = clock.now()
    audit.record("invitation_revoked", actor_user_id=actor.id if actor else None,
                 actor_label=actor.email if actor else (actor_label or "platform operator"),
                 target_type="invitation", target_id=invitation.id, email=invitation.email)
    return invitation


class InvitationLinkError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def for_token(token: str) -> Invitation:
    """The open invitation this link belongs to, or InvitationLinkError."""
    invitation = db.session.scalars(
        select(Invitation).where(Invitation.token_hash == _hash(token or ""))).first()
    if invitation is None:
        # Unknown, replaced by a re-send, or another tenant's: the same answer.
        raise InvitationLinkError("link_invalid", "This invitation link is not valid: it may "
                                                  "have been replaced by a newer one.", 404)
    state = invitation.state(clock.now())
    if state == "accepted":
        raise InvitationLinkError("link_used", "This invitation was already used: sign in "
                                               "with the password you chose.", 410)
    if state == "revoked":
        raise InvitationLinkError("link_revoked", "This invitation was withdrawn.", 410)
    if state == "expired":
        raise InvitationLinkError("link_expired", "This invitation has expired: ask whoever "
                                                  "invited you to send it again.", 410)
    return invitation


def accept(token: str, password: str, name: str = "") -> User:
    """Create the invited account with ``password``; the link is spent."""
    invitation = for_token(token)
    try:
        user = create_user(invitation.email, password, role=invitation.role,
                           name=name or invitation.name, verified=True)
    except UserValidationError as exc:
        if "email" in exc.details:  # someone signed up with this address meanwhile
            raise InvitationLinkError("link_used", "An account with this email already "
                                                   "exists: sign in instead.", 409) from None
        raise
    invitation.accepted_at = clock.now()
    invitation.accepted_user_id = user.id
    audit.record("invitation_accepted", actor_user_id=user.id, actor_label=user.email,
                 target_type="user", target_id=user.id, role=user.role)
    if user.role == "USER":
        from app.auth.account import customer_created

        customer_created(user)
    return user
