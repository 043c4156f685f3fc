"""The widget feature's reads the lane remembers (app/api/lane/remembered.py): a reseller's
widget keys, from the routes in app/widget/api.py. Their snippets name the tenant's primary
host, which the tenant cache's generation (part of every remembered answer's counters)
follows."""

from __future__ import annotations

from app.api.lane.remembered import remembered_route

remembered_route("/api/v1/widget/keys", tables=("widget_keys",))
remembered_route("/api/v1/widget/keys/<uuid:key_id>", tables=("widget_keys",))
