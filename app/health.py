"""Probes: /healthz (the process answers) and /readyz (database and Redis reachable)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.extensions import db
from app.redis import get_redis

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    from app.streamhub import open_streams

    # streams: the event streams this process holds open (app/streamhub.py), a gauge for
    # operators and for the tests that check a closed client's stream is released.
    return jsonify(status="ok", streams=open_streams(current_app))


@bp.get("/readyz")
def readyz():
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    finally:
        db.session.rollback()
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), (
        200 if ready else 503)
