"""Shared pieces for the agents tests: the stand-in provider, an app wired to it, helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAI, start_fake_openai


@pytest.fixture
def fake() -> FakeOpenAI:
    server = start_fake_openai()
    yield server
    server.close()


@pytest.fixture
def make_agents_app(app, migrated, fake) -> Callable[..., Any]:
    """An app whose provider is the stand-in (plus any extra settings a test needs).

    Depends on ``app`` so tables and Redis are emptied first.
    """
    from app import create_app

    built = []

    def make(**extra: str):
        values = {**migrated.extra, "OPENAI_BASE_URL": fake.base_url,
                  "OPENAI_API_KEY": "sk-platform", "ALBEDO_AGENTS_RETRY_BACKOFF": "0"}
        values.update(extra)
        values = {k: v for k, v in values.items() if v is not None}
        application = create_app(migrated.with_overrides(extra=values))
        built.append(application)
        return application

    yield make
    for application in built:
        with application.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it is truthy, or fail after ``timeout`` (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def run_agents_worker(application) -> None:
    from jobs.worker import run_worker

    run_worker(application, ["agents"], burst=True, simple=True)


VERSION = {"model": "gpt-4o-mini", "system_prompt": "You help {{company}} customers.",
           "variables": [{"name": "company", "type": "string", "default": "Acme"}]}


def make_agent(application, site, user_id, role: str = "USER", slug: str = "helper",
               version: dict[str, Any] | None = None):
    """An agent with a published first version, created through the service."""
    from app.agents.service import Caller, create_agent
    from app.extensions import db
    from tenants.context import activate

    with application.app_context(), activate(site.info):
        agent = create_agent(Caller(user_id, role), name=slug.title(), slug=slug,
                             version=version or VERSION)
        db.session.commit()
        return agent.id
