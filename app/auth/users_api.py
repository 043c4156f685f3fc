"""/api/v1/users: a reseller's staff and customers."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth import users
from app.auth.guard import current_principal, require
from app.auth.models import ROLES, User
from app.errors import ApiError
from app.extensions import db
from tenants.schemas import TenantUserSchema

blp = Blueprint("users", __name__, description="A reseller's staff and customers")


class UserArgsSchema(CursorArgsSchema):
    role = fields.String(validate=validate.OneOf(ROLES))


class UserChangeSchema(Schema):
    role = fields.String(validate=validate.OneOf(("RESELLER", "USER")),
                         metadata={"example": "RESELLER"})
    is_active = fields.Boolean(metadata={"example": False})
    banned = fields.Boolean(metadata={
        "description": "Ban a customer: its licenses validate as BANNED until unbanned."})


@blp.route("")
class Users(MethodView):
    @blp.arguments(UserArgsSchema, location="query")
    @blp.response(200, page_of(TenantUserSchema))
    @require(roles=("RESELLER",))
    def get(self, args):
        """Everyone with an account on this reseller's site, newest first."""
        page = paginate(users.users_query(args.get("role")), cursor=args["cursor"],
                        limit=args["limit"], order_by=(User.created_at, User.id))
        return {"items": page.items, "next_cursor": page.next_cursor}


@blp.route("/<uuid:user_id>")
class UserItem(MethodView):
    @blp.response(200, TenantUserSchema)
    @require(roles=("RESELLER",))
    def get(self, user_id: uuid.UUID):
        """One user of this reseller's site."""
        user = db.session.scalars(users.user_by_id(user_id)).first()
        if user is None:
            raise ApiError(404, "not_found", "No such user.")
        return user

    @blp.arguments(UserChangeSchema)
    @blp.response(200, TenantUserSchema)
    @require(roles=("RESELLER",))
    def patch(self, body, user_id: uuid.UUID):
        """Make a customer staff (or back), or deactivate / reactivate an account.

        Takes effect at once: the user's sessions and tokens end. Audited.
        """
        principal = current_principal()
        user = users.change(users.get_for_update(user_id, principal), principal,
                            body.get("role"), body.get("is_active"), body.get("banned"))
        db.session.commit()
        return user
