"""The alert rules and the Grafana dashboard only name series the app exports, and
promtool accepts the rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "albedo.json"
SERIES = re.compile(r"\b(albedo_[a-z0-9_]+|up)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "gauge": ("",), "summary": ("_count", "_sum", "")}


@pytest.fixture
def exported(ctx) -> set[str]:
    """Every series name /metrics can answer with (Prometheus adds ``up`` itself)."""
    from app.ops import metrics
    from app.ops.live import LiveCollector

    names = {"up"}
    for family in (*metrics.REGISTRY.collect(), *LiveCollector().collect()):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def _alert_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [(rule["alert"], rule["expr"]) for group in rules["groups"]
            for rule in group["rules"]]


def _panel_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel["targets"]]


def test_every_alert_names_exported_series(exported):
    alerts = _alert_exprs()
    required = {"AlbedoApiDown", "AlbedoHigh5xxRatio", "AlbedoSlowResponses",
                "AlbedoQueueBacklog", "AlbedoOldestJobTooOld", "AlbedoNoWorker",
                "AlbedoWebhookEndpointsDisabled", "AlbedoPaymentFailures",
                "AlbedoEmailFailures", "AlbedoLicenseSigningErrors"}
    assert required <= {name for name, _ in alerts}
    for name, expr in alerts:
        used = set(SERIES.findall(expr))
        assert used, f"{name} names no series"
        assert used <= exported, f"{name} uses series the app does not export: {used - exported}"


def test_every_dashboard_panel_names_exported_series(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"], "the dashboard has panels"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for title, expr in _panel_exprs():
        used = set(SERIES.findall(expr))
        assert used, f"panel {title!r} names no series"
        assert used <= exported, f"panel {title!r} uses unknown series: {used - exported}"


def test_the_checker_catches_an_unknown_series(exported):
    # The tests above would pass vacuously if the pattern found nothing: it does not.
    assert set(SERIES.findall("rate(albedo_made_up_total[5m])")) - exported == {
        "albedo_made_up_total"}


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (Debian: apt-get install prometheus)")
def test_promtool_accepts_the_rules():
    done = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alert_exprs())} rules found" in done.stdout
