"""Shared pieces for the widget tests: a key for an agent, a token, a streamed chat."""

from __future__ import annotations

import json
from typing import Any

from tests.agents_support import VERSION

ORIGIN = "http://shop.example:8080"
VISITOR = "visitor-0001"


def make_widget(client, headers, *, origins=(ORIGIN,), slug="helper", **extra) -> dict:
    """An agent (published) and a widget key for it, through the API."""
    agent = client.post("/api/v1/agents", headers=headers,
                        json={"name": slug.title(), "slug": slug, "version": VERSION})
    assert agent.status_code == 201, agent.get_json()
    created = client.post("/api/v1/widget/keys", headers=headers,
                          json={"name": "Shop", "agent_id": agent.get_json()["id"],
                                "allowed_origins": list(origins), **extra})
    assert created.status_code == 201, created.get_json()
    return created.get_json()


def embed(key: str, path: str) -> str:
    return f"/api/v1/widget/embed/{key}{path}"


def token_for(client, key: str, origin: str | None = ORIGIN, visitor: str = VISITOR,
              **body: Any):
    headers = {"Origin": origin} if origin else {}
    return client.post(embed(key, "/token"), headers=headers,
                       json={"visitor_id": visitor, **body})


def chat(client, key: str, token: str, message: str, origin: str | None = ORIGIN):
    headers = {"Authorization": f"Bearer {token}"}
    if origin:
        headers["Origin"] = origin
    return client.post(embed(key, "/chat"), headers=headers, json={"message": message},
                       buffered=False)


def events_of(response) -> list[tuple[str, dict]]:
    """The SSE events of a (finished) stream as (kind, data)."""
    body = b"".join(response.response).decode()
    response.close()
    found = []
    for block in body.split("\n\n"):
        kind, data = "message", None
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if data is not None:
            found.append((kind, data))
    return found


def answer_text(events) -> str:
    return "".join(d["text"] for k, d in events if k == "token")
