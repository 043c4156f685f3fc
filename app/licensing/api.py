"""The licensing management API: products, policies, licenses, bulk issues, the log.

Resellers (scope licenses:write) manage their whole tenant; customers (role USER, scope
licenses:read) list and read only the licenses they own, and their machines.
"""

from __future__ import annotations

import uuid

from flask import Response, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app.api import idempotency
from app.api.pagination import CursorArgsSchema, page_of, paginate
from app.auth.guard import current_principal, require
from app.billing.limits import PLAN_LIMIT_DOC
from app.errors import ApiError
from app.extensions import db
from app.licensing import bulk as bulk_service
from app.licensing import files, service
from app.licensing.models import BulkIssue, License, Machine, Policy, Product, ValidationRecord
from app.licensing.public_api import _license_from_header, _machine_view
from app.licensing.schemas import (
    AttachSchema,
    BulkIssueCreateSchema,
    BulkIssueSchema,
    ExtendSchema,
    LicenseCreateSchema,
    LicenseFileRequestSchema,
    LicenseFileSchema,
    LicenseSchema,
    LicenseSearchSchema,
    MachineSchema,
    PolicySchema,
    PolicyUpdateSchema,
    ProductSchema,
    ValidationRecordSchema,
)
from tenants.urls import tenant_url_for

RESELLER = ("RESELLER",)
READERS = ("RESELLER", "USER")

products_blp = Blueprint("license_products", __name__, description="Licensed products")
policies_blp = Blueprint("license_policies", __name__, description="License policies")
licenses_blp = Blueprint("licenses", __name__, description="Licenses: issue, search, act")


def _page(page) -> dict:
    return {"items": page.items, "next_cursor": page.next_cursor}


def _order(model) -> tuple:
    return (model.created_at, model.id)


# --- products -----------------------------------------------------------------------------

@products_blp.route("")
class Products(MethodView):
    @products_blp.arguments(CursorArgsSchema, location="query")
    @products_blp.response(200, page_of(ProductSchema))
    @require("licenses:read", roles=RESELLER)
    def get(self, args):
        """The reseller's products, newest first."""
        return _page(paginate(select(Product), cursor=args["cursor"], limit=args["limit"],
                              order_by=_order(Product)))

    @products_blp.arguments(ProductSchema)
    @products_blp.response(201, ProductSchema)
    @require("licenses:write", roles=RESELLER)
    def post(self, body):
        """Create a product; `code` is the product scope agents validate with."""
        product = service.create_product(body["name"], body["code"], body["agent_ids"],
                                         body["entitlements"])
        db.session.commit()
        return product


@products_blp.route("/<uuid:product_id>")
class ProductItem(MethodView):
    @products_blp.response(200, ProductSchema)
    @require("licenses:read", roles=RESELLER)
    def get(self, product_id: uuid.UUID):
        """One product."""
        return service.get_product(product_id)


# --- policies -----------------------------------------------------------------------------

def _policy_input(body: dict) -> service.PolicyInput:
    fields = service.PolicyInput.__dataclass_fields__
    return service.PolicyInput(**{k: v for k, v in body.items() if k in fields})


@policies_blp.route("")
class Policies(MethodView):
    @policies_blp.arguments(CursorArgsSchema, location="query")
    @policies_blp.response(200, page_of(PolicySchema))
    @require("licenses:read", roles=RESELLER)
    def get(self, args):
        """The reseller's policies, newest first."""
        return _page(paginate(select(Policy), cursor=args["cursor"], limit=args["limit"],
                              order_by=_order(Policy)))

    @policies_blp.arguments(PolicySchema)
    @policies_blp.response(201, PolicySchema)
    @require("licenses:write", roles=RESELLER)
    def post(self, body):
        """Create a policy for a product (duration, expiry, machines, heartbeat, usage)."""
        policy = service.create_policy(service.get_product(body["product_id"]),
                                       _policy_input(body))
        db.session.commit()
        return policy


@policies_blp.route("/<uuid:policy_id>")
class PolicyItem(MethodView):
    @policies_blp.response(200, PolicySchema)
    @require("licenses:read", roles=RESELLER)
    def get(self, policy_id: uuid.UUID):
        """One policy."""
        return service.get_policy(policy_id)

    @policies_blp.arguments(PolicyUpdateSchema)
    @policies_blp.response(200, PolicySchema)
    @require("licenses:write", roles=RESELLER)
    def put(self, body, policy_id: uuid.UUID):
        """Replace a policy's rules; they apply to its licenses at their next validation."""
        policy = service.update_policy(service.get_policy(policy_id), _policy_input(body))
        db.session.commit()
        return policy


# --- licenses -----------------------------------------------------------------------------

def _visible(license_id: uuid.UUID) -> License:
    """The license, if the caller may see it: a USER only its own (404 otherwise)."""
    license_ = db.session.get(License, license_id)
    principal = current_principal()
    if license_ is None or (principal.role == "USER"
                            and license_.owner_id != principal.user_id):
        raise ApiError(404, "license_not_found", "No license has this id.")
    return license_


@licenses_blp.route("")
class Licenses(MethodView):
    @licenses_blp.arguments(LicenseSearchSchema, location="query")
    @licenses_blp.response(200, page_of(LicenseSchema))
    @require("licenses:read", roles=READERS)
    def get(self, args):
        """Search licenses (`q`, `status`, `product_id`), newest first. A customer sees its own."""
        principal = current_principal()
        if principal.role == "USER":
            from app.auth.models import User

            if service.claim_pending(db.session.get(User, principal.user_id)):
                db.session.commit()
        stmt = service.search_licenses(
            args["q"], args["status"], args["product_id"],
            owner_id=principal.user_id if principal.role == "USER" else None)
        return _page(paginate(stmt, cursor=args["cursor"], limit=args["limit"],
                              order_by=_order(License)))

    @licenses_blp.arguments(LicenseCreateSchema)
    @licenses_blp.response(201, LicenseSchema)
    @licenses_blp.alt_response(402, **PLAN_LIMIT_DOC)
    @require("licenses:write", roles=RESELLER)
    def post(self, body):
        """Issue a license; `customer_email` attaches it to a customer without an account."""
        if body["owner_id"] is not None:
            from app.auth.models import User

            if db.session.get(User, body["owner_id"]) is None:
                raise ApiError(422, "validation_failed", "No user has this id.",
                               details={"fields": {"owner_id": "unknown user"}})
        license_ = service.issue_license(
            service.get_policy(body["policy_id"]), name=body["name"],
            customer_email=body["customer_email"], owner_id=body["owner_id"],
            expires_at=body["expires_at"], entitlements=body["entitlements"])
        db.session.commit()
        return license_


@licenses_blp.route("/<uuid:license_id>")
class LicenseItem(MethodView):
    @licenses_blp.response(200, LicenseSchema)
    @require("licenses:read", roles=READERS)
    def get(self, license_id: uuid.UUID):
        """One license (a customer: only its own)."""
        return _visible(license_id)


_ACTIONS = {
    "suspend": (service.suspend, "Suspend: validations answer SUSPENDED until reinstated."),
    "reinstate": (service.reinstate, "Reinstate a suspended license."),
    "revoke": (service.revoke, "Revoke, for good: validations answer REVOKED from now on."),
    "renew": (service.renew, "Renew: extend the expiry by the policy's duration; the key is "
                             "re-signed."),
}


def _action_view(action: str) -> type[MethodView]:
    act, doc = _ACTIONS[action]

    @licenses_blp.response(200, LicenseSchema)
    @require("licenses:write", roles=RESELLER)
    def post(self, license_id: uuid.UUID):
        license_ = act(service.get_license(license_id))
        db.session.commit()
        return license_

    post.__doc__ = doc
    return type(f"License{action.title()}", (MethodView,), {"post": post})


for _action in _ACTIONS:
    licenses_blp.route(f"/<uuid:license_id>/{_action}")(_action_view(_action))


@licenses_blp.route("/<uuid:license_id>/extend")
class LicenseExtend(MethodView):
    @licenses_blp.arguments(ExtendSchema)
    @licenses_blp.response(200, LicenseSchema)
    @require("licenses:write", roles=RESELLER)
    def post(self, body, license_id: uuid.UUID):
        """Set a new expiry; the key is re-signed with it."""
        license_ = service.extend(service.get_license(license_id), body["expires_at"])
        db.session.commit()
        return license_


@licenses_blp.route("/<uuid:license_id>/customer")
class LicenseCustomer(MethodView):
    @licenses_blp.arguments(AttachSchema)
    @licenses_blp.response(200, LicenseSchema)
    @require("licenses:write", roles=RESELLER)
    def put(self, body, license_id: uuid.UUID):
        """Attach the license to a customer by email (claimed when the account exists)."""
        from app.auth.service import find_by_email

        license_ = service.attach_customer(service.get_license(license_id),
                                           body["customer_email"])
        user = find_by_email(license_.customer_email) if license_.customer_email else None
        if user is not None and license_.owner_id is None:
            license_.owner_id = user.id
        db.session.commit()
        return license_


@licenses_blp.route("/<uuid:license_id>/file")
class LicenseFile(MethodView):
    @licenses_blp.arguments(LicenseFileRequestSchema)
    @licenses_blp.response(201, LicenseFileSchema)
    def post(self, body, license_id: uuid.UUID):
        """A signed license file for offline use: the license, its entitlements, the issue
        time and `ttl`; with `encrypt`, readable only with the license key.

        The reseller (scope licenses:read), the customer who owns the license, or an agent
        holding the key (`Authorization: License <key>`, for its own license) may ask.
        """
        if (request.headers.get("Authorization") or "").lower().startswith("license "):
            license_ = _license_from_header()
            if license_.id != license_id:
                raise ApiError(404, "license_not_found", "No license has this id.")
        else:
            license_ = _visible_for_reader(license_id)
        return files.license_file(license_, body["ttl"], body["encrypt"])


@require("licenses:read", roles=READERS)
def _visible_for_reader(license_id: uuid.UUID) -> License:
    return _visible(license_id)


@licenses_blp.route("/<uuid:license_id>/machines")
class LicenseMachines(MethodView):
    @licenses_blp.arguments(CursorArgsSchema, location="query")
    @licenses_blp.response(200, page_of(MachineSchema))
    @require("licenses:read", roles=READERS)
    def get(self, args, license_id: uuid.UUID):
        """The license's machines (a customer: only for its own licenses)."""
        license_ = _visible(license_id)
        page = paginate(select(Machine).where(Machine.license_id == license_.id),
                        cursor=args["cursor"], limit=args["limit"], order_by=_order(Machine))
        return {"items": [_machine_view(m) for m in page.items],
                "next_cursor": page.next_cursor}


# --- bulk issues and the validation log ---------------------------------------------------

def _bulk_view(row: BulkIssue) -> dict:
    csv_url = (tenant_url_for("licenses.BulkIssueCsv", bulk_id=row.id)
               if row.status == "done" else None)
    return {**{c: getattr(row, c) for c in ("id", "policy_id", "requested", "issued",
                                            "status", "progress", "error", "created_at",
                                            "finished_at")}, "csv_url": csv_url}


@licenses_blp.route("/bulk")
class BulkIssues(MethodView):
    @licenses_blp.arguments(BulkIssueCreateSchema)
    @licenses_blp.response(202, BulkIssueSchema)
    @licenses_blp.alt_response(402, **PLAN_LIMIT_DOC)
    @idempotency.honours(licenses_blp)
    @require("licenses:write", roles=RESELLER)
    def post(self, body, idempotency_key=None):
        """Issue up to 10,000 licenses in the background; poll the returned row's progress.

        An ``Idempotency-Key`` makes a retried request return the same bulk issue instead of
        issuing the licenses twice; the same key with a different body answers 422
        ``idempotency_key_reused``. Keys are kept 24 hours. With the job queue unreachable the
        issue is stored all the same (202) and run once it is back.
        """
        row = bulk_service.start(service.get_policy(body["policy_id"]), body["count"],
                                 body["name_prefix"], current_principal().user_id,
                                 idempotency_key=idempotency_key)
        db.session.commit()
        return _bulk_view(row)


@licenses_blp.route("/bulk/<uuid:bulk_id>")
class BulkIssueItem(MethodView):
    @licenses_blp.response(200, BulkIssueSchema)
    @require("licenses:read", roles=RESELLER)
    def get(self, bulk_id: uuid.UUID):
        """A bulk issue's progress (`issued` of `requested`) and, once done, its CSV URL."""
        return _bulk_view(bulk_service.get(bulk_id))


@licenses_blp.route("/bulk/<uuid:bulk_id>/licenses.csv")
class BulkIssueCsv(MethodView):
    @licenses_blp.response(200, content_type="text/csv")
    @require("licenses:read", roles=RESELLER)
    def get(self, bulk_id: uuid.UUID):
        """The bulk issue's licenses as CSV (license_id, key, name, expires_at, status)."""
        row = bulk_service.get(bulk_id)
        if row.status != "done":
            raise ApiError(409, "bulk_issue_running", "The licenses are still being issued.",
                           details={"issued": row.issued, "requested": row.requested})
        return Response(stream_with_context(bulk_service.csv_lines(row)), mimetype="text/csv",
                        headers={"Content-Disposition":
                                 f'attachment; filename="licenses-{row.id}.csv"'})


@licenses_blp.route("/validations")
class Validations(MethodView):
    @licenses_blp.arguments(CursorArgsSchema, location="query")
    @licenses_blp.response(200, page_of(ValidationRecordSchema))
    @require("licenses:read", roles=RESELLER)
    def get(self, args):
        """The validation log (written in batches, a few seconds behind), newest first."""
        return _page(paginate(select(ValidationRecord), cursor=args["cursor"],
                              limit=args["limit"],
                              order_by=(ValidationRecord.validated_at, ValidationRecord.id)))
