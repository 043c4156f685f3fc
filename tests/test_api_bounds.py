"""Every integer a client can send is bounded: PostgreSQL's integer is 32-bit, and a number
past a column's range (or past any sensible meaning) must be a 422, never a 500 or a stored
absurdity. Walks every request schema in the OpenAPI document: bodies and parameters."""

from __future__ import annotations

from typing import Any

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1  # only for integers the document declares format int64 (BigInteger)


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = spec["components"]["schemas"][name]
    return node


def _integers(spec: dict[str, Any], node: Any, where: str, seen: set[str]):
    """(where, schema) of every integer in ``node``, following refs once each."""
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return
        seen = seen | {name}
        yield from _integers(spec, _resolve(spec, node), f"{where}<{name}>", seen)
        return
    kinds = node.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "integer" in kinds:
        yield where, node
    for name, child in (node.get("properties") or {}).items():
        yield from _integers(spec, child, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _integers(spec, node[key], f"{where}[]", seen)
    for key in ("allOf", "anyOf", "oneOf"):
        for index, child in enumerate(node.get(key) or []):
            yield from _integers(spec, child, f"{where}|{index}", seen)


def request_integers(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or method == "parameters":
                continue
            where = f"{method.upper()} {path}"
            for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]:
                parameter = _resolve(spec, parameter)
                yield from _integers(spec, parameter.get("schema") or {},
                                     f"{where} ?{parameter.get('name')}", set())
            for media in ((operation.get("requestBody") or {}).get("content") or {}).values():
                yield from _integers(spec, media.get("schema") or {}, f"{where} body", set())


def test_every_integer_in_every_request_schema_is_bounded(app, acme):
    spec = acme.client.get("/api/v1/openapi.json").get_json()
    found = list(request_integers(spec))
    assert found, "the walk found no integer at all: it is broken"
    unbounded = sorted({where for where, schema in found
                        if "minimum" not in schema or "maximum" not in schema})
    assert unbounded == [], "integers without a Range: " + ", ".join(unbounded)
    def widest(schema: dict[str, Any]) -> int:
        return INT64_MAX if schema.get("format") == "int64" else INT32_MAX

    too_wide = sorted({where for where, schema in found
                       if schema.get("maximum", 0) > widest(schema)
                       or schema.get("minimum", 0) < -widest(schema) - 1})
    assert too_wide == [], "ranges past a 32-bit column: " + ", ".join(too_wide)


def test_the_walk_sees_an_unbounded_integer():
    """The walk itself: a schema with a bare integer is reported."""
    spec = {"paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/In"}}}}}}},
        "components": {"schemas": {"In": {"type": "object", "properties": {
            "n": {"type": "integer"}, "m": {"type": "integer", "minimum": 1, "maximum": 5}}}}}}
    found = {where: schema for where, schema in request_integers(spec)}
    assert set(found) == {"POST /x body<In>.n", "POST /x body<In>.m"}
    assert "maximum" not in found["POST /x body<In>.n"]


def test_huge_numbers_are_refused_with_a_422(app, acme, api_caller):
    """The issue's examples: a policy with 2**40 days, a publish of version 407699743918."""
    staff = api_caller(acme, role="RESELLER")
    product = acme.client.post("/api/v1/products", headers=staff.headers,
                               json={"name": "Pro", "code": "pro"})
    assert product.status_code == 201, product.get_json()
    for field in ("duration_days", "grace_period_seconds"):
        response = acme.client.post("/api/v1/policies", headers=staff.headers, json={
            "product_id": product.get_json()["id"], "name": "Huge", field: 2**40})
        assert response.status_code == 422, (field, response.get_json())
        assert field in str(response.get_json()["error"]["details"])
    agent = acme.client.post("/api/v1/agents", headers=staff.headers, json={
        "name": "Helper", "slug": "helper",
        "version": {"model": "gpt-4o-mini", "system_prompt": "Hi."}})
    assert agent.status_code == 201, agent.get_json()
    publish = acme.client.post(f"/api/v1/agents/{agent.get_json()['id']}/publish",
                               headers=staff.headers, json={"version": 407699743918})
    assert publish.status_code == 422, publish.get_json()


def test_a_nul_character_is_refused_with_a_422(app, acme, api_caller):
    """PostgreSQL's text cannot hold NUL: found by the property-based run as a 500."""
    staff = api_caller(acme, role="RESELLER")
    body = acme.client.post("/api/v1/products", headers=staff.headers,
                            json={"name": "Pro\x00", "code": "pro"})
    assert body.status_code == 422 and body.get_json()["error"]["code"] == "invalid_text"
    query = acme.client.get("/api/v1/agents?cursor=a%00b", headers=staff.headers)
    assert query.status_code == 422 and query.get_json()["error"]["code"] == "invalid_text"
