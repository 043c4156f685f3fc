"""Public tenant information for widgets and embedded agents."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from tenants.context import current
from tenants.schemas import TenantBrandingSchema
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
