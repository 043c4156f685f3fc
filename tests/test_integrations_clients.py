"""The client artefacts stay consistent with the API: n8n templates import cleanly (valid
nodes and connections, Header Auth on every HTTP call, hook URLs that exist), and the Zapier
app's triggers cover the catalogue's main events."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.integrations.catalogue import EVENTS

CLIENTS = Path(__file__).resolve().parent.parent / "clients"
TEMPLATES = sorted((CLIENTS / "n8n").glob("*.json"))


def test_there_are_templates_for_an_event_an_agent_run_and_a_license():
    assert {p.name for p in TEMPLATES} == {"on-event.json", "run-agent.json",
                                           "create-license.json"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_n8n_template_is_importable_and_authenticates_with_header_auth(ctx, path):
    workflow = json.loads(path.read_text())
    names = [n["name"] for n in workflow["nodes"]]
    assert len(names) == len(set(names)) and workflow["name"]
    for source, outputs in workflow["connections"].items():
        assert source in names
        for branch in outputs["main"]:
            assert all(link["node"] in names for link in branch)
    calls = [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.httpRequest"]
    assert calls, "each template calls the API"
    adapter = ctx.url_map.bind("localhost")
    for node in calls:
        params = node["parameters"]
        assert params["authentication"] == "genericCredentialType"
        assert params["genericAuthType"] == "httpHeaderAuth"
        assert "httpHeaderAuth" in node["credentials"]
        path_part = re.sub(r"^=https://YOUR-DASHBOARD-DOMAIN", "", params["url"])
        assert path_part.startswith("/api/v1/")
        if params.get("sendBody"):
            json.loads(params["jsonBody"])
        if path_part.startswith("/api/v1/hooks"):
            adapter.match(path_part, method=params["method"])  # raises if no such route


def test_the_zapier_app_has_a_rest_hook_trigger_per_main_event():
    source = (CLIENTS / "zapier" / "triggers" / "events.js").read_text()
    declared = set(re.findall(r"\['([a-z_]+\.[a-z_]+)', '", source))
    assert declared <= set(EVENTS)
    assert {"execution.succeeded", "execution.failed", "license.created", "license.revoked",
            "customer.created", "subscription.updated"} <= declared
    creates = {p.stem for p in (CLIENTS / "zapier" / "creates").glob("*.js")}
    assert creates == {"run_agent", "create_license"}
