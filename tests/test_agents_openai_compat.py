"""The official openai SDK against our OpenAI-compatible endpoint, served by werkzeug."""

from __future__ import annotations

import threading

import openai
import pytest
from werkzeug.serving import make_server

from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
    run_agents_worker,
    wait_until,
)
from tests.conftest import host_client


@pytest.fixture
def served(make_agents_app, fake, acme, globex, api_caller):
    application = make_agents_app()
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ann = api_caller(acme, email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")
    for site, caller in ((acme, ann), (globex, gus)):
        created = host_client(application, site.host).post(
            "/api/v1/agents", headers=caller.headers,
            json={"name": "Support", "slug": f"support-{site.info.slug}", "version": VERSION})
        assert created.status_code == 201
    yield application, server.server_port, ann, gus
    server.shutdown()


def _client(port: int, site, caller) -> openai.OpenAI:
    key = caller.headers["Authorization"].removeprefix("Bearer ")
    # The tenant is chosen by Host, exactly as a reseller's domain would in production.
    return openai.OpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/api/v1/openai",
                         default_headers={"Host": site.host}, max_retries=0, timeout=30)


def _in_background(call):
    result: dict = {}

    def run():
        try:
            result["value"] = call()
        except Exception as error:  # handed to the test thread
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _executions(application) -> int:
    from sqlalchemy import func, select

    from app.agents.models import Execution
    from app.extensions import db
    from tenants.context import cross_tenant

    with application.app_context(), cross_tenant("test waits for the queued row"):
        return db.session.scalar(select(func.count()).select_from(Execution))


def test_sdk_non_streaming_with_history(served, fake, acme):
    application, port, ann, _gus = served
    client = _client(port, acme, ann)
    thread, result = _in_background(lambda: client.chat.completions.create(
        model="support-acme", messages=[
            {"role": "system", "content": "ignored: the agent's own prompt rules"},
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": "hello agent"}]))
    wait_until(lambda: _executions(application) == 1, what="the execution")
    run_agents_worker(application)
    thread.join(30)
    answer = result["value"]
    assert answer.choices[0].message.content == "Echo: hello agent"
    assert answer.model == "support-acme" and answer.usage.completion_tokens == 3
    sent = fake.requests[0]["messages"]
    assert [m["content"] for m in sent] == ["You help Acme customers.", "earlier question",
                                             "earlier answer", "hello agent"]


def test_sdk_streaming(served, acme):
    application, port, ann, _gus = served
    client = _client(port, acme, ann)

    def call():
        stream = client.chat.completions.create(
            model="support-acme", messages=[{"role": "user", "content": "stream it"}],
            stream=True, stream_options={"include_usage": True})
        return list(stream)

    thread, result = _in_background(call)
    wait_until(lambda: _executions(application) == 1, what="the execution")
    run_agents_worker(application)
    thread.join(30)
    chunks = result["value"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream it"
    assert chunks[-1].usage.completion_tokens == 3


def test_sdk_errors_and_tenant_isolation(served, fake, acme, globex):
    _application, port, ann, gus = served
    # Globex's key on Globex's domain cannot reach Acme's agent by its slug.
    with pytest.raises(openai.NotFoundError):
        _client(port, globex, gus).chat.completions.create(
            model="support-acme", messages=[{"role": "user", "content": "x"}])
    # Nor does Globex's key work on Acme's domain at all.
    with pytest.raises(openai.AuthenticationError):
        _client(port, acme, gus).chat.completions.create(
            model="support-acme", messages=[{"role": "user", "content": "x"}])
    models = _client(port, acme, ann).models.list()
    assert [m.id for m in models.data] == ["support-acme"]
    assert fake.requests == []
