"""The platform operator and a reseller's people: invite the owner at onboarding, see,
re-send and revoke the reseller's invitations.

Invitations are the reseller's rows, sent in the reseller's branding from its domain: the
work runs inside ``tenants.activate`` of the reseller (an explicit, one-tenant switch rather
than a cross-tenant read), and everything it adds is flushed before the switch ends so no row
is stamped with the wrong tenant. The operator's own log records the operator's act; the
reseller's log says "platform operator", never the operator's address.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.auth import audit, invitations
from app.auth.models import Invitation, User
from app.extensions import db
from tenants.context import activate
from tenants.models import Tenant
from tenants.service import info_for

OPERATOR_LABEL = "platform operator"


def invite_owner(tenant: Tenant, email: str, actor: User) -> Invitation:
    """Invite ``email`` as the reseller's first staff member (its owner)."""
    db.session.flush()  # the operator's pending rows keep the platform's tenant
    with activate(info_for(tenant)):
        invitation = invitations.invite(email, "RESELLER", actor_label=OPERATOR_LABEL,
                                        owner=True)
        db.session.flush()
    _record(actor, "invitation_sent", tenant, invitation)
    return invitation


def _record(actor: User, action: str, tenant: Tenant, invitation: Invitation) -> None:
    audit.record(action, actor_user_id=actor.id, actor_label=actor.email, target_type="tenant",
                 target_id=tenant.id, email=invitation.email, invitation=str(invitation.id))


def invitations_of(tenant: Tenant, state: str | None = "pending") -> list[Invitation]:
    with activate(info_for(tenant)):
        return list(db.session.scalars(invitations.invitations_query(state).order_by(
            Invitation.created_at.desc()).limit(200)))


def act_on_invitation(tenant: Tenant, invitation_id: uuid.UUID, action: str,
                      actor: User) -> Invitation:
    """``resend`` or ``revoke`` one of the reseller's invitations (404 if not the reseller's)."""
    db.session.flush()
    with activate(info_for(tenant)):
        invitation = db.session.scalars(select(Invitation).where(
            Invitation.id == invitation_id)).first()
        if invitation is None:
            from app.errors import ApiError

            raise ApiError(404, "not_found", "No such invitation for this reseller.")
        getattr(invitations, action)(invitation, actor_label=OPERATOR_LABEL)
        db.session.flush()
    _record(actor, "invitation_resent" if action == "resend" else "invitation_revoked",
            tenant, invitation)
    return invitation


def reload(tenant: Tenant, invitation: Invitation) -> Invitation:
    """Load a committed invitation's attributes again, as its own tenant (for the answer)."""
    with activate(info_for(tenant)):
        db.session.refresh(invitation)
    return invitation
