"""Fixtures and checks shared by the read lane's tests (app/api/lane)."""

from __future__ import annotations

import contextlib

import pytest

from app.api.lane.wsgi import ReadLane


class Lane:
    """Counts the requests the lane answered itself; switches it off for a reference call."""

    def __init__(self, application, monkeypatch):
        self.app = application
        self.answered = 0
        original = ReadLane._answer

        def counted(lane, *args, **kwargs):
            answer = original(lane, *args, **kwargs)
            self.answered += answer is not None
            return answer

        monkeypatch.setattr(ReadLane, "_answer", counted)

    def _holder(self):
        outer = self.app.wsgi_app
        while not isinstance(outer.next, ReadLane):
            outer = outer.next
        return outer

    @contextlib.contextmanager
    def off(self):
        holder = self._holder()
        lane = holder.next
        holder.next = lane.next
        try:
            yield
        finally:
            holder.next = lane


@pytest.fixture
def lane(app, monkeypatch):
    return Lane(app, monkeypatch)


def _token(site, email: str) -> dict[str, str]:
    answer = site.client.post("/api/v1/auth/token", json={
        "email": email, "password": "correct horse battery"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def _agent(site, headers, name: str) -> str:
    answer = site.client.post("/api/v1/agents", headers=headers, json={"name": name})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return answer.get_json()["id"]


@pytest.fixture
def people(app, acme, globex, make_user, api_caller):
    """On acme: the reseller (two templates), Ann (nine agents) and Bob (two); on globex, a
    customer with the same email as Ann (three agents)."""
    make_user(acme, "owner@acme.example", role="RESELLER")
    make_user(acme, "ann@example.com")
    make_user(acme, "bob@example.com")
    make_user(globex, "ann@example.com")
    callers = {
        "reseller": _token(acme, "owner@acme.example"),
        "ann": _token(acme, "ann@example.com"),
        "bob": _token(acme, "bob@example.com"),
        "gus": _token(globex, "ann@example.com"),
    }
    callers["ann_key"] = api_caller(acme, email="ann@example.com").headers
    callers["ann_read_key"] = api_caller(acme, email="ann@example.com",
                                         scopes=["agents:read"]).headers
    agents = {
        "template": [_agent(acme, callers["reseller"], f"Template {i}") for i in range(2)],
        "ann": [_agent(acme, callers["ann"], f"Ann {i}") for i in range(9)],
        "bob": [_agent(acme, callers["bob"], f"Bob {i}") for i in range(2)],
        "gus": [_agent(globex, callers["gus"], f"Gus {i}") for i in range(3)],
    }
    return callers, agents


def _same(lane_answer, route_answer) -> None:
    """Byte for byte the route's answer; the same headers, budgets one request apart."""
    assert lane_answer.status_code == route_answer.status_code == 200
    assert lane_answer.get_data() == route_answer.get_data()
    assert sorted(lane_answer.headers.keys()) == sorted(route_answer.headers.keys())
    for name in ("Content-Type", "Content-Length", "X-RateLimit-Limit"):
        assert lane_answer.headers[name] == route_answer.headers[name]
    assert (int(route_answer.headers["X-RateLimit-Remaining"])
            == int(lane_answer.headers["X-RateLimit-Remaining"]) - 1)
    assert lane_answer.headers["X-Request-ID"] != route_answer.headers["X-Request-ID"]
