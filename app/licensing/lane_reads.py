"""The licensing feature's reads in the read lane (app/api/lane): a reseller's products page
and one product, from the same statements and schema as the routes in app/licensing/api.py.
(Policies load their product with a join: not a lane read as they stand.)"""

from __future__ import annotations

from sqlalchemy import select

from app.api.lane.remembered import remembered_route
from app.api.lane.routes import item_route, page_route
from app.licensing import service
from app.licensing.models import Product
from app.licensing.schemas import ProductSchema

_READ = {"scopes": ("licenses:read",), "roles": ("RESELLER",)}

page_route("/api/v1/products", schema=ProductSchema, statement=lambda _p: select(Product),
           order_by=(Product.created_at, Product.id), **_READ)
item_route("/api/v1/products/<uuid:product_id>", schema=ProductSchema,
           statement=lambda _p, product_id: service.product_by_id(product_id), **_READ)

# The reads the route answers and the lane remembers (app/api/lane/remembered.py). A
# customer's license list claims licenses sold to their email first: an answer that claimed
# one is not remembered (it wrote), the next is. The bulk issue's CSV is a download of keys.
_LICENSES = ("licenses", "license_policies", "license_products")
remembered_route("/api/v1/licenses", tables=(*_LICENSES, "users"))
remembered_route("/api/v1/licenses/<uuid:license_id>", tables=_LICENSES)
remembered_route("/api/v1/licenses/<uuid:license_id>/machines",
                 tables=(*_LICENSES, "license_machines"))
remembered_route("/api/v1/licenses/bulk/<uuid:bulk_id>", tables=("license_bulk_issues",))
remembered_route("/api/v1/licenses/validations", tables=("license_validations",))
remembered_route("/api/v1/policies", tables=("license_policies", "license_products"))
remembered_route("/api/v1/policies/<uuid:policy_id>",
                 tables=("license_policies", "license_products"))
