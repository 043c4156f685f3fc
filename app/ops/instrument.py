"""Request and connection-pool instrumentation: Flask hooks and SQLAlchemy pool events.

The license validation lane (app/licensing/lane.py) answers most validations before Flask
sees them, so those requests are not in ``albedo_http_*``: they are counted by code, in
batches, when the validation counters are flushed (``albedo_license_validations``), which
keeps the hot path free of per-request metric writes.
"""

from __future__ import annotations

import time

from flask import Flask, g, request
from sqlalchemy import event

from app.ops import metrics

_STARTED = "albedo.ops.started"
_RATE_SCOPES = ("ip", "credential", "tenant", "auth")


def init_app(app: Flask) -> None:
    # First of all before_request functions: the time includes tenant resolution and auth,
    # and it runs even when one of those answers early.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_observe)
    _instrument_pool(app)


def _start_timer() -> None:
    request.environ[_STARTED] = time.perf_counter()


def _observe(response):
    started = request.environ.get(_STARTED)
    if started is None:
        return response
    rule = request.url_rule
    route = rule.rule if rule is not None else "unmatched"
    labels = (route, request.method, metrics.status_class(response.status_code))
    metrics.http_requests.labels(*labels).inc()
    metrics.http_duration.labels(*labels).observe(time.perf_counter() - started)
    code = g.get("error_code")
    if code is not None and response.status_code >= 400:
        metrics.api_errors.labels(code, labels[2]).inc()
        from app.ops import recent_errors

        recent_errors.note(code)
    # Budgets only: a locked account or a spent monthly quota is a 429 too, with its own code.
    if response.status_code == 429 and code == "rate_limited":
        metrics.rate_limited.labels(_rate_scope()).inc()
    return response


def _rate_scope() -> str:
    refused = g.get("rate_limit_refused_scope")  # set by the one-trip limiter (app/api/budgets)
    if refused:
        return next((p for p in str(refused).split(":") if p in _RATE_SCOPES), "route")
    from app.api.limits import limiter

    try:
        limit = limiter.current_limit
    except Exception:  # no limiter context for this request
        limit = None
    if limit is not None and limit.breached and limit.request_args:
        # flask-limiter's bucket: "<scope>" when shared, "<endpoint>:<scope>[:<method>]" not.
        parts = str(limit.request_args[-1]).split(":")
        return next((p for p in parts if p in _RATE_SCOPES), "route")
    return "license" if request.path.startswith("/api/v1/licenses") else "other"


def _instrument_pool(app: Flask) -> None:
    from app.extensions import db

    with app.app_context():
        engine = db.engine
    if getattr(engine, "_albedo_ops_instrumented", False):
        return
    engine._albedo_ops_instrumented = True  # type: ignore[attr-defined]
    pool = engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", 0)
    if callable(size):
        metrics.db_pool_capacity.inc(size() + max(overflow, 0))
    in_use = metrics.db_connections_in_use

    @event.listens_for(engine, "checkout")
    def _checkout(*_args) -> None:
        in_use.inc()

    @event.listens_for(engine, "checkin")
    def _checkin(*_args) -> None:
        in_use.dec()
