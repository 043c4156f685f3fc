"""Probes and logs."""

import json
import logging

from app import create_app


def test_readyz_is_503_when_redis_is_unreachable(migrated):
    app = create_app(migrated.with_overrides(redis_url="redis://127.0.0.1:1/0"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unreachable")
    assert app.test_client().get("/healthz").status_code == 200


def test_request_id_is_echoed_or_generated(app, acme):
    given = acme.client.get("/api/v1/tenant", headers={"X-Request-ID": "req-123"})
    assert given.headers["X-Request-ID"] == "req-123"
    made = acme.client.get("/api/v1/nope")
    assert len(made.headers["X-Request-ID"]) == 32
    assert made.get_json()["error"]["request_id"] == made.headers["X-Request-ID"]
    hostile = acme.client.get("/api/v1/tenant", headers={"X-Request-ID": "<script>" + "x" * 200})
    assert len(hostile.headers["X-Request-ID"]) == 32  # replaced, not echoed


def test_json_log_lines_carry_request_and_tenant(app, acme):
    from app.logs import ContextFilter, JsonFormatter

    records = []

    class Capture(logging.Handler):
        def emit(self, record):
            records.append(JsonFormatter().format(record))

    handler = Capture()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("albedo.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    @app.get("/api/v1/_log_probe")
    def probe():
        logger.info("probe")
        return {"ok": True}

    acme.client.get("/api/v1/_log_probe", headers={"X-Request-ID": "req-log-1"})
    logger.removeHandler(handler)
    line = json.loads(records[-1])
    assert line["request_id"] == "req-log-1" and line["tenant"] == "acme"
    assert line["message"] == "probe"
