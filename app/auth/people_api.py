"""/api/v1/invitations: a reseller invites its team and customers (the people pages' API)."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth import invitations
from app.auth.guard import current_principal, require
from app.auth.models import INVITATION_ROLES, Invitation, User
from app.extensions import db

blp = Blueprint("invitations", __name__,
                description="Invite team members and customers by email")


class InvitationStateSchema(Schema):
    state = fields.String(load_default="pending", validate=validate.OneOf(("pending", "all")),
                          metadata={"description": "pending (default; expired included) or all"})


class InvitationArgsSchema(CursorArgsSchema, InvitationStateSchema):
    pass


class InvitationCreateSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(1, 254),
                          metadata={"example": "alice@customer.example"})
    role = fields.String(required=True, validate=validate.OneOf(INVITATION_ROLES),
                         metadata={"example": "USER",
                                   "description": "RESELLER: your team; USER: a customer"})
    name = fields.String(load_default="", validate=validate.Length(max=120))


class InvitationSchema(Schema):
    id = fields.UUID()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    state = fields.Method("_state", metadata={"example": "pending"})
    invited_by = fields.String(attribute="invited_by_label")
    sent_at = fields.AwareDateTime()
    send_count = fields.Integer()
    expires_at = fields.AwareDateTime()
    accepted_at = fields.AwareDateTime(allow_none=True)
    revoked_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()

    def _state(self, invitation: Invitation) -> str:
        from app import clock

        return invitation.state(clock.now())


def _actor() -> User:
    return db.session.get(User, current_principal().user_id)


@blp.route("")
class Invitations(MethodView):
    @blp.arguments(InvitationArgsSchema, location="query")
    @blp.response(200, page_of(InvitationSchema))
    @require(roles=("RESELLER",))
    def get(self, args):
        """This reseller's invitations, newest first."""
        stmt = invitations.invitations_query(None if args["state"] == "all" else "pending")
        page = paginate(stmt, cursor=args["cursor"], limit=args["limit"],
                        order_by=(Invitation.created_at, Invitation.id))
        return {"items": page.items, "next_cursor": page.next_cursor}

    @blp.arguments(InvitationCreateSchema)
    @blp.response(201, InvitationSchema)
    @blp.alt_response(409, description="The email already has an account (`already_member`)")
    @require(roles=("RESELLER",))
    def post(self, body):
        """Email someone a single-use link (valid 7 days) to choose a password and join.

        An open invitation for the same email is replaced. A customer invitation needs a
        free customer place in the plan (`402 plan_limit_reached`). Audited.
        """
        invitation = invitations.invite(body["email"], body["role"], name=body["name"],
                                        actor=_actor())
        db.session.commit()
        return invitation


@blp.route("/<uuid:invitation_id>")
class InvitationItem(MethodView):
    @blp.response(200, InvitationSchema)
    @require(roles=("RESELLER",))
    def get(self, invitation_id: uuid.UUID):
        """One invitation."""
        return invitations.get(invitation_id)

    @blp.response(200, InvitationSchema)
    @require(roles=("RESELLER",))
    def delete(self, invitation_id: uuid.UUID):
        """Withdraw an invitation: its link stops working. Audited."""
        invitation = invitations.revoke(invitations.get(invitation_id), actor=_actor())
        db.session.commit()
        return invitation


@blp.route("/<uuid:invitation_id>/resend")
class InvitationResend(MethodView):
    @blp.response(200, InvitationSchema)
    @require(roles=("RESELLER",))
    def post(self, invitation_id: uuid.UUID):
        """Send a fresh link (7 more days); the previous link stops working. Audited."""
        invitation = invitations.resend(invitations.get(invitation_id), actor=_actor())
        db.session.commit()
        return invitation
