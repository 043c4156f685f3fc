"""The licensing feature's reads in the read lane (app/api/lane): a reseller's products page
and one product, from the same statements and schema as the routes in app/licensing/api.py.
(Policies load their product with a join: not a lane read as they stand.)"""

from __future__ import annotations

from sqlalchemy import select

from app.api.lane.routes import item_route, page_route
from app.licensing import service
from app.licensing.models import Product
from app.licensing.schemas import ProductSchema

_READ = {"scopes": ("licenses:read",), "roles": ("RESELLER",)}

page_route("/api/v1/products", schema=ProductSchema, statement=lambda _p: select(Product),
           order_by=(Product.created_at, Product.id), **_READ)
item_route("/api/v1/products/<uuid:product_id>", schema=ProductSchema,
           statement=lambda _p, product_id: service.product_by_id(product_id), **_READ)
