"""``GET /metrics``: Prometheus text format, for a bearer of ``ALBEDO_METRICS_TOKEN`` only.

Answered on any host, like the probes: Prometheus scrapes a container by its address, not
by a tenant's domain. Without the token (or with the setting unset) the answer is the
ordinary 404 of a path that does not exist, on every host, so a reseller's domain reveals
nothing; and no series carries a tenant's name or id.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from app.ops import metrics
from app.ops.live import LiveCollector

bp = Blueprint("ops_metrics", __name__)
ENDPOINT = "ops_metrics.metrics_endpoint"


def _authorised() -> bool:
    token = current_app.extensions["albedo.settings"].metrics_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode())


class _Local:
    """This process's own registry, as a collector (single-process mode)."""

    def collect(self):
        return metrics.REGISTRY.collect()


def exposition() -> bytes:
    """Every series: the processes' counters (added up in multiprocess mode) and live ones."""
    registry = CollectorRegistry(auto_describe=False)
    if metrics.multiprocess_enabled():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Local())
    registry.register(LiveCollector())
    return generate_latest(registry)


@bp.get("/metrics")
def metrics_endpoint():
    if not _authorised():
        # Exactly what any unknown path answers on this host: resolve the tenant as every
        # other request does (an unknown host's 404, a suspended tenant's 403, or the
        # tenant's own branded 404), so the refusal tells nothing about /metrics.
        from tenants.web import resolve_request_tenant

        resolve_request_tenant()
        abort(404)
    # The 0.0.4 text format every Prometheus (and Debian's 2.x) parses; our names are ASCII,
    # so it is byte for byte what the newer content type would announce.
    return Response(exposition(), mimetype=None, content_type=CONTENT_TYPE_PLAIN_0_0_4,
                    headers={"Cache-Control": "no-store"})
