"""The read lane: warm authenticated API reads answered without Flask's request pipeline.

Flask's pipeline around a read — the request context, a dozen app-wide hooks, the ORM's
statement building and object loading, marshmallow's dump — cost several times the read
itself. The lane (``wsgi``) answers a read whose outcome is already known to be the plain
one (a cached credential, budgets granted, the row found) from the route's own declarations
(``routes``), run as statements compiled once (``prepared``) and dumped straight from the
driver's rows (``dump``). Every other request, and every error, is the Flask route's, which
stays the reference and the OpenAPI document. ``ALBEDO_READ_LANE=false`` turns it off.
"""

from __future__ import annotations

from flask import Flask

# The features whose reads the lane answers; each registers them on import.
FEATURES = ("app.auth.lane_reads", "app.agents.lane_reads", "app.billing.lane_reads",
            "app.integrations.lane_reads", "app.licensing.lane_reads", "app.widget.lane_reads",
            "tenants.lane_reads")


def install(app: Flask) -> None:
    import importlib

    from app.api.lane import remembered
    from app.api.lane.wsgi import ReadLane

    for module in FEATURES:
        importlib.import_module(module)
    # Every process watches the tables of remembered reads, the lane on or off: a write in
    # a worker must move the counters a web process's answers depend on.
    remembered.bind(app)
    if app.extensions["albedo.settings"].read_lane:
        app.wsgi_app = ReadLane(app, app.wsgi_app)  # type: ignore[method-assign]
