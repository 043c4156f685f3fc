"""The API's fast serialization gives the answers marshmallow and Flask gave.

FastDumpSchema replaces marshmallow's field loop, FastJSONProvider Flask's JSON encoder and
SchemaReusingParser webargs' per-request schema: each is compared here with the code it
stands in for.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from marshmallow import Schema, fields

from app.agents.models import Agent
from app.agents.schemas import AgentSchema
from app.api.arguments import SchemaReusingParser
from app.api.pagination import CursorArgsSchema, page_of
from app.api.serialization import FastDumpSchema
from app.auth.schemas import MeSchema


def _marshmallow(schema: Schema, obj, many: bool = False):
    return Schema._serialize(schema, obj, many=many)  # marshmallow's own loop


def _agent(**overrides) -> Agent:
    values = dict(id=uuid.uuid4(), tenant_id=uuid.uuid4(), owner_id=uuid.uuid4(),
                  name="Agent Ünïcode", slug="agent", description="", status="active",
                  is_template=False, published_version=None,
                  created_at=datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
                  updated_at=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    values.update(overrides)
    return Agent(**values)


def test_agent_and_page_dumps_equal_marshmallows():
    schema = AgentSchema()
    for agent in (_agent(), _agent(published_version=3, is_template=True, description=None)):
        assert schema.dump(agent) == _marshmallow(schema, agent)
    page = page_of(AgentSchema)()
    for body in ({"items": [_agent(), _agent()], "next_cursor": "abc"},
                 {"items": [_agent()], "next_cursor": None}, {"items": []}):
        fast = page.dump(body)
        assert fast == _marshmallow(page, body)
        assert json.dumps(fast)  # plain JSON types only


def test_me_dumps_equal_marshmallows():
    schema = MeSchema()
    for me in ({"kind": "api_key", "user_id": uuid.uuid4(), "email": "a@example.com",
                "role": "USER", "scopes": ["agents:read"], "api_key_id": uuid.uuid4(),
                "tenant": {"slug": "acme", "display_name": "Acme"}},
               {"kind": "access_token", "user_id": str(uuid.uuid4()), "email": "b@example.com",
                "role": "RESELLER", "scopes": [], "api_key_id": None, "tenant": {}}):
        assert schema.dump(me) == _marshmallow(schema, me)


class _Owner:
    def __init__(self) -> None:
        self.email = "owner@example.com"


class _Odd(FastDumpSchema):
    """Every kind of field the fast loop treats differently, and some it must leave alone."""

    plain = fields.String()
    renamed = fields.String(data_key="outName")
    aliased = fields.Integer(attribute="source")
    dotted = fields.String(attribute="owner.email")
    method = fields.Method("_shout")
    defaulted = fields.String(dump_default="fallback")
    as_string = fields.Integer(as_string=True)
    number = fields.Integer()
    ident = fields.UUID()
    flag = fields.Boolean()
    when = fields.DateTime()
    nested = fields.Nested(AgentSchema, allow_none=True)
    tags = fields.List(fields.String())
    load_only = fields.String(load_only=True)

    def _shout(self, obj) -> str:
        value = obj.get("plain") if isinstance(obj, dict) else getattr(obj, "plain", None)
        return str(value).upper()


class _Thing:
    def __init__(self, **values) -> None:
        self.__dict__.update(values)


def test_odd_fields_dump_as_marshmallow_does_from_objects_and_dicts():
    schema = _Odd()
    full = dict(plain="a", renamed="b", source=7, owner=_Owner(), as_string=5, number=True,
                ident=str(uuid.uuid4()), flag=1, when=datetime(2026, 5, 1, tzinfo=UTC),
                nested=_agent(), tags=["x", 2], load_only="secret")
    sparse = dict(plain=None, number=None, ident=None, flag=None, when=None, nested=None)
    for values in (full, sparse, {}):
        for obj in (_Thing(**values), dict(values)):
            if not isinstance(obj, dict) and "owner" not in values:
                obj.owner = _Owner()
            assert schema.dump(obj) == _marshmallow(schema, obj), values
    many = [_Thing(**full), _Thing(**{**full, "plain": "b"})]
    assert schema.dump(many, many=True) == _marshmallow(schema, many, many=True)


def _flask_response(app, value) -> bytes:
    from flask.json.provider import DefaultJSONProvider

    with app.app_context():
        return DefaultJSONProvider(app).response(value).get_data()


@dataclass
class _Point:
    x: int
    y: int


def test_json_answers_decode_to_what_flask_sent(app):
    values = [
        {"b": 1, "a": [1.5, None, True], "nested": {"z": "é", "y": "\u2028"}},
        {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "id": uuid.UUID(int=5),
         "price": Decimal("1.10"), "point": _Point(1, 2)},
        {"huge": 2**70},  # beyond orjson: Flask's encoder answers
        {2: "integer keys", 1: "as Flask writes them"},
        [],
        "text",
    ]
    with app.app_context():
        for value in values:
            ours = app.json.response(value)
            flask_bytes = _flask_response(app, value)
            assert ours.mimetype == "application/json"
            assert ours.get_data().endswith(b"\n")
            assert json.loads(ours.get_data()) == json.loads(flask_bytes), value
        ascii_only = {"b": [1, 2], "a": {"d": None, "c": "x"}}
        assert app.json.response(ascii_only).get_data() == _flask_response(app, ascii_only)


def test_argument_schemas_are_made_once():
    parser = SchemaReusingParser()
    first = parser._get_schema(CursorArgsSchema, None)
    assert isinstance(first, CursorArgsSchema)
    assert parser._get_schema(CursorArgsSchema, None) is first
    instance = CursorArgsSchema()
    assert parser._get_schema(instance, None) is instance


def test_a_page_of_agents_is_the_same_answer_through_the_api(app, acme, api_caller):
    headers = api_caller(acme).headers
    for i in range(3):
        created = acme.client.post("/api/v1/agents", headers=headers, json={"name": f"A {i}"})
        assert created.status_code == 201
    answer = acme.client.get("/api/v1/agents?limit=2", headers=headers)
    assert answer.status_code == 200
    body = answer.get_json()
    assert [set(item) for item in body["items"]] == [set(AgentSchema().fields)] * 2
    assert body["next_cursor"]
    rest = acme.client.get(f"/api/v1/agents?limit=2&cursor={body['next_cursor']}",
                           headers=headers).get_json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {i["id"] for i in body["items"]}.isdisjoint({i["id"] for i in rest["items"]})
