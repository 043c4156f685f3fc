"""The Prometheus series Albedo exports, and the small functions that record them.

One module defines every series, so names, labels and buckets are in one place and the
dashboard and alert rules have one list to match (tests/test_ops_dashboards.py checks them).

Labels are bounded by construction: route *templates* (never paths), methods, status
classes, queue names, outcomes from fixed sets, configured model names (anything else is
``other``). No tenant, user, key or license id appears on any series: per-tenant figures
are the usage API's job, not Prometheus's.

Multiprocess: with ``PROMETHEUS_MULTIPROC_DIR`` set before the process starts, every value
lives in a per-process file in that directory and ``/metrics`` adds them up (README,
*Operations*). prometheus_client decides this when it is first imported, from the
environment; :func:`multiprocess_enabled` says what it decided.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

# Metrics live in our own registry, not prometheus_client's global one: in single-process
# mode (the quick start, tests) that registry is what /metrics exposes; in multiprocess mode
# the values are in files and this registry is not read at all.
REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds. A page or API call is fast (tens of ms); an agent run or a queue wait is long.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

http_requests = Counter(
    "albedo_http_requests", "HTTP requests answered by Flask, by route template",
    ("route", "method", "status_class"), registry=REGISTRY)
http_duration = Histogram(
    "albedo_http_request_duration_seconds", "Time to answer an HTTP request",
    ("route", "method", "status_class"), buckets=HTTP_BUCKETS, registry=REGISTRY)
api_errors = Counter(
    "albedo_api_errors", "Error answers (4xx and 5xx) by envelope code",
    ("code", "status_class"), registry=REGISTRY)
rate_limited = Counter(
    "albedo_rate_limit_refusals", "Requests refused with 429 by a rate limit, by budget",
    ("scope",), registry=REGISTRY)
unhandled_errors = Counter(
    "albedo_unhandled_errors", "Exceptions no handler expected (500s), by feature area",
    ("area",), registry=REGISTRY)

executions = Counter(
    "albedo_executions", "Agent executions that reached an outcome",
    ("outcome", "model"), registry=REGISTRY)
execution_queue_wait = Histogram(
    "albedo_execution_queue_wait_seconds", "Time an execution waited before a worker took it",
    buckets=JOB_BUCKETS, registry=REGISTRY)
execution_run = Histogram(
    "albedo_execution_run_seconds", "Time from a worker taking an execution to its outcome",
    ("outcome",), buckets=JOB_BUCKETS, registry=REGISTRY)
execution_tokens = Counter(
    "albedo_execution_tokens", "Provider tokens used by executions",
    ("model", "kind"), registry=REGISTRY)
provider_cost = Counter(
    "albedo_provider_cost_usd", "What executions cost at the provider, in US dollars",
    ("model",), registry=REGISTRY)

webhook_deliveries = Counter(
    "albedo_webhook_deliveries", "Webhook delivery attempts by outcome",
    ("outcome",), registry=REGISTRY)
webhook_endpoints_disabled = Counter(
    "albedo_webhook_endpoints_disabled", "Webhook endpoints disabled after failing",
    registry=REGISTRY)
emails = Counter(
    "albedo_emails", "Email sends by outcome (sent, retrying, failed)",
    ("outcome",), registry=REGISTRY)
stripe_events = Counter(
    "albedo_stripe_events", "Stripe events applied, by type and outcome",
    ("type", "outcome"), registry=REGISTRY)
license_validations = Counter(
    "albedo_license_validations", "License validations by answer code (counted in batches)",
    ("code",), registry=REGISTRY)
license_signing_errors = Counter(
    "albedo_license_signing_errors", "Failures to sign a license key or a validation answer",
    registry=REGISTRY)

# Live gauges: a dead process's share disappears (livesum) once it is marked dead.
db_connections_in_use = Gauge(
    "albedo_db_connections_in_use", "Database connections checked out of the pools",
    registry=REGISTRY, multiprocess_mode="livesum")
db_pool_capacity = Gauge(
    "albedo_db_pool_capacity", "Connections the pools may open (size plus overflow)",
    registry=REGISTRY, multiprocess_mode="livesum")

# Bounded label sets for values that come from outside.
EXECUTION_OUTCOMES = ("succeeded", "failed", "timed_out", "cancelled")
DELIVERY_OUTCOMES = ("succeeded", "failed", "cancelled", "retrying")
EMAIL_OUTCOMES = ("sent", "retrying", "failed")


def multiprocess_enabled() -> bool:
    return values.ValueClass is not values.MutexValue


def bounded(value: str | None, allowed: Iterable[str], other: str = "other") -> str:
    """``value`` when it is one of ``allowed``, else ``other``: labels never grow unbounded."""
    return value if value is not None and value in allowed else other


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def record_license_validations(codes: Iterable[str]) -> None:
    """Count validations by code, once per flushed batch (app/licensing/tasks.py)."""
    from app.licensing.validation import CODES

    tally: dict[str, int] = {}
    for code in codes:
        label = bounded(code, CODES)
        tally[label] = tally.get(label, 0) + 1
    for code, count in tally.items():
        license_validations.labels(code).inc(count)


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a finished process's live gauges (gunicorn's ``child_exit`` calls this)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and multiprocess_enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid(), directory)
