"""The identity feature's reads in the read lane (app/api/lane): ``/me``, and a reseller's
users page and one user, from the same statements and schema as app/auth/users_api.py."""

from __future__ import annotations

from typing import Any

from app.api.lane.remembered import remembered_route
from app.api.lane.routes import LaneRequest, answer_route, item_route, page_route
from app.auth import users
from app.auth.api import me_answer
from app.auth.models import ROLES, User
from app.auth.schemas import MeSchema
from tenants.schemas import TenantUserSchema

_SCHEMA = MeSchema()


def _me(request: LaneRequest) -> Any:
    if request.principal.email is None:
        return None  # read with the principal since; the route reads it
    return _SCHEMA.dump(me_answer(request.principal, request.tenant, request.principal.email))


answer_route("/api/v1/me", _me)
page_route("/api/v1/users", roles=("RESELLER",), schema=TenantUserSchema,
           statement=lambda _principal, role: users.users_query(role),
           order_by=(User.created_at, User.id), choice_filters={"role": tuple(ROLES)})
item_route("/api/v1/users/<uuid:user_id>", roles=("RESELLER",), schema=TenantUserSchema,
           statement=lambda _principal, user_id: users.user_by_id(user_id))

# The reads the route answers and the lane remembers (app/api/lane/remembered.py). A key's
# last use comes from Redis, noted at most once a second: its answers stand a second at most.
# An invitation turns expired at its expires_at. An operator's audit log is every tenant's.
remembered_route("/api/v1/api-keys", tables=("api_keys",), max_age=1.0)
remembered_route("/api/v1/api-keys/<uuid:key_id>", tables=("api_keys",), max_age=1.0)
remembered_route("/api/v1/invitations", tables=("invitations",), expiry_fields=("expires_at",))
remembered_route("/api/v1/invitations/<uuid:invitation_id>", tables=("invitations",),
                 expiry_fields=("expires_at",))
remembered_route("/api/v1/audit-events", tables=("audit_events", "tenants"),
                 across_tenants=("ADMIN",))
