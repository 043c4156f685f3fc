"""Authentication API: tokens, API keys, and who am I."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.api.limits import auth_limit
from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth import api_keys, audit, tokens
from app.auth.guard import current_principal, require
from app.auth.models import ApiKey, User
from app.auth.schemas import (
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeySchema,
    MeSchema,
    RefreshRequestSchema,
    TokenPairSchema,
    TokenRequestSchema,
)
from app.auth.signin import SignInError, sign_in
from app.billing.limits import PLAN_LIMIT_DOC
from app.errors import ApiError
from app.extensions import db
from tenants.context import current

auth_blp = Blueprint("auth_api", __name__, description="Access and refresh tokens")
keys_blp = Blueprint("api_keys", __name__, description="API keys for programs and widgets")
me_blp = Blueprint("me", __name__, description="Who is calling")


def _pair(pair: tokens.TokenPair) -> dict:
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "token_type": "Bearer", "expires_in": pair.expires_in}


@auth_blp.route("/token")
class Token(MethodView):
    decorators = [auth_limit()]

    @auth_blp.arguments(TokenRequestSchema)
    @auth_blp.response(200, TokenPairSchema)
    @auth_blp.alt_response(401, description="Wrong email or password (`invalid_credentials`)")
    @auth_blp.alt_response(429, description="Locked after repeated failures, or rate limited")
    def post(self, body):
        """Exchange email and password for a 15-minute access token and a refresh token.

        The token works only on the domain that issued it.
        """
        try:
            user = sign_in(body["email"], body["password"], channel="api")
        except SignInError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        pair = tokens.issue_pair(user)
        db.session.commit()
        return _pair(pair)


@auth_blp.route("/refresh")
class Refresh(MethodView):
    decorators = [auth_limit()]

    @auth_blp.arguments(RefreshRequestSchema)
    @auth_blp.response(200, TokenPairSchema)
    def post(self, body):
        """Spend a refresh token for a new pair (rotation).

        Presenting a refresh token that was already spent signs out its whole family.
        """
        try:
            pair = tokens.rotate(body["refresh_token"])
        except tokens.TokenError as exc:
            raise ApiError(401, "invalid_refresh_token", str(exc)) from None
        db.session.commit()
        return _pair(pair)


@auth_blp.route("/logout")
class Logout(MethodView):
    @auth_blp.arguments(RefreshRequestSchema)
    @auth_blp.response(204)
    def post(self, body):
        """Revoke a refresh token and every token descended from the same sign-in."""
        tokens.revoke(body["refresh_token"])
        db.session.commit()


def _key_view(key: ApiKey) -> dict:
    view = {c: getattr(key, c) for c in ("id", "name", "prefix", "last_four", "scopes",
                                         "expires_at", "revoked_at", "created_at")}
    view["last_used_at"] = api_keys.pending_last_used(key)
    return view


@keys_blp.route("")
class ApiKeys(MethodView):
    @keys_blp.arguments(CursorArgsSchema, location="query")
    @keys_blp.response(200, page_of(ApiKeySchema))
    @require()
    def get(self, args):
        """List your API keys (never their secrets)."""
        principal = current_principal()
        page = paginate(select(ApiKey).where(ApiKey.user_id == principal.user_id),
                        cursor=args["cursor"], limit=args["limit"],
                        order_by=(ApiKey.created_at, ApiKey.id))
        return {"items": [_key_view(k) for k in page.items], "next_cursor": page.next_cursor}

    @keys_blp.arguments(ApiKeyCreateSchema)
    @keys_blp.response(201, ApiKeyCreatedSchema)
    @keys_blp.alt_response(402, **PLAN_LIMIT_DOC)
    @require()
    def post(self, body):
        """Create an API key. The secret is in this answer only; it is stored as a hash."""
        principal = current_principal()
        if principal.kind != "user":
            raise ApiError(403, "forbidden", "API keys are created with a signed-in user's "
                                             "token, not with another API key.")
        user = db.session.get(User, principal.user_id)
        key, raw = api_keys.create_key(user, body["name"], body["scopes"], body["expires_at"])
        audit.record("api_key_created", actor_user_id=user.id, actor_label=user.email,
                     target_type="api_key", target_id=key.id, prefix=key.prefix)
        db.session.commit()
        return {**_key_view(key), "key": raw}


@keys_blp.route("/<uuid:key_id>")
class ApiKeyItem(MethodView):
    @keys_blp.response(200, ApiKeySchema)
    @require()
    def get(self, key_id: uuid.UUID):
        """One of your API keys."""
        key = api_keys.get_key(key_id, current_principal().user_id)
        if key is None:
            raise ApiError(404, "not_found", "No such API key.")
        return _key_view(key)

    @keys_blp.response(204)
    @require()
    def delete(self, key_id: uuid.UUID):
        """Revoke an API key; it stops working at once."""
        principal = current_principal()
        key = api_keys.get_key(key_id, principal.user_id)
        if key is None:
            raise ApiError(404, "not_found", "No such API key.")
        api_keys.revoke_key(key)
        audit.record("api_key_revoked", actor_user_id=principal.user_id,
                     target_type="api_key", target_id=key.id, prefix=key.prefix)
        db.session.commit()


@me_blp.route("")
class Me(MethodView):
    @me_blp.response(200, MeSchema)
    @require()
    def get(self):
        """Who is calling: user or key, tenant, role and scopes (Zapier's connection test)."""
        principal = current_principal()
        email = principal.email or db.session.get(User, principal.user_id).email
        return me_answer(principal, current(), email)


def me_answer(principal, tenant, email: str) -> dict:
    """What /me says (the read lane answers it the same way: app/auth/lane_reads.py)."""
    return {"kind": principal.kind, "user_id": principal.user_id, "email": email,
            "role": principal.role, "scopes": sorted(principal.scopes),
            "api_key_id": principal.api_key_id,
            "tenant": {"slug": tenant.slug, "display_name": tenant.display_name}}
