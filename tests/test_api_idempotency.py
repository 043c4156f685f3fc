"""Idempotency-Key: the OpenAPI document and the behaviour agree.

Every POST that honours the header declares it (app/api/idempotency.py ``honours``), nothing
else reads it, and each declaring operation is replayed here: the same key with the same body
answers what the first request created, another body answers 422 ``idempotency_key_reused``,
a key is its caller's own (a look-alike in another tenant gets its own), and an over-long key
is refused. A new POST that declares the header fails this test until it has a replay below.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.api import idempotency
from app.extensions import db
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
)
from tests.conftest import host_client

ROOT = Path(__file__).resolve().parent.parent


def _declaring(document: dict) -> dict[tuple[str, str], dict]:
    """(METHOD, path) → the Idempotency-Key parameter, for every operation that declares it."""
    found = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter["name"] == idempotency.HEADER:
                    found[(method.upper(), path)] = parameter
    return found


def _honouring(application) -> set[tuple[str, str]]:
    """(METHOD, path) of every view method marked by ``idempotency.honours``."""
    found = set()
    for rule in application.url_map.iter_rules():
        view = application.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            handler = getattr(view_class, method.lower(), None) if view_class else view
            if getattr(handler, idempotency.MARK, False):
                path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
                found.add((method, path))
    return found


# ---- the document and the code ---------------------------------------------------------------

def test_the_routes_declaring_the_header_are_the_routes_that_honour_it(app, acme):
    document = acme.client.get("/api/v1/openapi.json").get_json()
    declared = _declaring(document)
    assert set(declared) == _honouring(app)
    assert set(declared) == set(REPLAYS)  # and each one is replayed below
    for (method, path), parameter in declared.items():
        assert method == "POST", path
        assert parameter["required"] is False
        assert parameter["schema"] == {"type": "string", "minLength": 1,
                                       "maxLength": idempotency.MAX_LENGTH}
        description = parameter["description"]
        assert "idempotency_key_reused" in description and "24 hours" in description


def test_nothing_reads_the_header_but_the_one_mechanism():
    reads = re.compile(r"""headers(?:\.get\(|\[)\s*["']Idempotency-Key["']""", re.IGNORECASE)
    offenders = [str(path.relative_to(ROOT)) for folder in ("app", "tenants", "jobs")
                 for path in (ROOT / folder).rglob("*.py") if reads.search(path.read_text())]
    assert offenders == []


# ---- the behaviour of every declaring operation ----------------------------------------------

@dataclass
class Replay:
    """One declaring operation: its URL and two different bodies, for a caller of a site."""

    url: str
    body: dict
    other_body: dict
    headers: dict
    count: Callable[[], int]  # how many units the caller's tenant holds


def _count(application, site, model) -> Callable[[], int]:
    def count() -> int:
        with application.app_context(), activate(site.info):
            return db.session.scalar(select(func.count()).select_from(model))

    return count


def _execution_replay(application, site, api_caller) -> Replay:
    from app.agents.models import Execution

    caller = api_caller(site, email="ann@example.com")
    agent = host_client(application, site.host).post(
        "/api/v1/agents", headers=caller.headers,
        json={"name": "Helper", "slug": "helper", "version": VERSION}).get_json()
    return Replay(f"/api/v1/agents/{agent['id']}/executions", {"input": "hello"},
                  {"input": "something else"}, caller.headers,
                  _count(application, site, Execution))


def _bulk_replay(application, site, api_caller) -> Replay:
    from app.licensing.models import BulkIssue

    caller = api_caller(site, role="RESELLER", email="rita@example.com")
    client = host_client(application, site.host)
    product = client.post("/api/v1/products", headers=caller.headers,
                          json={"name": "Pro", "code": "pro", "entitlements": ["chat"]})
    policy = client.post("/api/v1/policies", headers=caller.headers, json={
        "product_id": product.get_json()["id"], "name": "Yearly", "duration_days": 365})
    policy_id = policy.get_json()["id"]
    return Replay("/api/v1/licenses/bulk", {"policy_id": policy_id, "count": 3},
                  {"policy_id": policy_id, "count": 4}, caller.headers,
                  _count(application, site, BulkIssue))


REPLAYS = {
    ("POST", "/api/v1/agents/{agent_id}/executions"): _execution_replay,
    ("POST", "/api/v1/licenses/bulk"): _bulk_replay,
}


@pytest.mark.parametrize("operation", sorted(REPLAYS), ids=lambda op: op[1])
def test_every_declaring_operation_honours_the_key(operation, make_agents_app, fake, acme,  # noqa: F811
                                                   globex, api_caller):
    application = make_agents_app()
    mine = REPLAYS[operation](application, acme, api_caller)
    theirs = REPLAYS[operation](application, globex, api_caller)  # a look-alike elsewhere
    client = host_client(application, acme.host)
    keyed = {**mine.headers, idempotency.HEADER: "order-42"}
    first = client.post(mine.url, headers=keyed, json=mine.body)
    again = client.post(mine.url, headers=keyed, json=mine.body)
    assert first.status_code in (200, 201, 202), first.get_json()
    assert again.status_code in (200, 201, 202)
    assert again.get_json()["id"] == first.get_json()["id"]
    reused = client.post(mine.url, headers=keyed, json=mine.other_body)
    assert reused.status_code == 422
    assert reused.get_json()["error"]["code"] == "idempotency_key_reused"
    too_long = client.post(mine.url, json=mine.body, headers={
        **mine.headers, idempotency.HEADER: "k" * (idempotency.MAX_LENGTH + 1)})
    assert too_long.status_code == 422
    assert mine.count() == 1
    # Without a key, every request is new.
    assert client.post(mine.url, headers=mine.headers, json=mine.body).get_json()["id"] != (
        first.get_json()["id"])
    assert mine.count() == 2
    # The same key is another caller's own.
    other = host_client(application, globex.host).post(
        theirs.url, headers={**theirs.headers, idempotency.HEADER: "order-42"},
        json=theirs.other_body)
    assert other.status_code in (200, 201, 202)
    assert other.get_json()["id"] != first.get_json()["id"]
    assert (theirs.count(), mine.count()) == (1, 2)
