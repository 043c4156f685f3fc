"""Public tenant information for widgets and embedded agents."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from app.auth.guard import require
from app.extensions import db
from tenants import platform
from tenants.context import current
from tenants.models import Tenant
from tenants.schemas import BrandingUpdateSchema, TenantBrandingSchema
from tenants.service import info_for
from tenants.urls import base_url

blp = Blueprint("tenant", __name__, description="The tenant serving this domain")


@blp.route("")
class CurrentTenant(MethodView):
    @blp.response(200, TenantBrandingSchema)
    def get(self):
        """The branding of the tenant that serves this domain.

        Public: a widget embedded on a customer's site uses it to show the reseller's name
        and colours. An unknown domain answers 404 `tenant_not_found`.
        """
        tenant = current()
        return {**tenant.__dict__, "base_url": base_url(tenant)}

    @blp.arguments(BrandingUpdateSchema)
    @blp.response(200, TenantBrandingSchema)
    @require(roles=("RESELLER",))
    def patch(self, body):
        """Change this reseller's branding (name, logo, colours, support email, key prefix).

        Only the reseller's staff may; pages, emails and license keys follow at once.
        """
        tenant = platform.change_branding(db.session.get(Tenant, current().id), body)
        db.session.commit()
        info = info_for(tenant)
        return {**info.__dict__, "base_url": base_url(info)}
