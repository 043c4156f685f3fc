"""The tenants feature's reads the lane remembers (app/api/lane/remembered.py): a reseller's
own domains, and the operator's view of resellers, which reads every tenant's rows."""

from __future__ import annotations

from app.api.lane.remembered import remembered_route

remembered_route("/api/v1/tenant/domains", tables=("domains",))
_OPERATOR = ("ADMIN",)
remembered_route("/api/v1/platform/resellers", tables=("tenants", "domains"),
                 across_tenants=_OPERATOR)
remembered_route("/api/v1/platform/resellers/<uuid:tenant_id>", tables=("tenants", "domains"),
                 across_tenants=_OPERATOR)
remembered_route("/api/v1/platform/resellers/<uuid:tenant_id>/users",
                 tables=("tenants", "domains", "users"), across_tenants=_OPERATOR)
remembered_route("/api/v1/platform/resellers/<uuid:tenant_id>/invitations",
                 tables=("tenants", "domains", "invitations"), across_tenants=_OPERATOR,
                 expiry_fields=("expires_at",))
