"""The execution stream keeps an idle connection alive with heartbeats, then streams the run."""

from __future__ import annotations

import json
import threading

import pytest

from app.agents import engine, streaming
from app.agents.config import AgentsConfig, AgentsConfigError
from app.redis import get_redis
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
)
from tests.conftest import host_client
from tests.fakes.openai_server import Step


def test_a_waiting_execution_stream_sends_heartbeats_then_the_answer(
        make_agents_app, fake, acme, globex, api_caller):
    # A tiny interval, so a heartbeat is due long before anything runs the execution.
    application = make_agents_app(ALBEDO_SSE_HEARTBEAT_SECONDS="0.02")
    client = host_client(application, acme.host)
    ann = api_caller(acme, email="ann@example.com")
    gus = api_caller(globex, email="ann@example.com")
    agent = client.post("/api/v1/agents", headers=ann.headers,
                        json={"name": "Helper", "slug": "helper", "version": VERSION}).get_json()
    execution = client.post(f"/api/v1/agents/{agent['id']}/executions", headers=ann.headers,
                            json={"input": "beat then answer"}).get_json()
    url = f"/api/v1/executions/{execution['id']}/stream"
    # Another tenant cannot even open the stream.
    assert host_client(application, globex.host).get(url, headers=gus.headers).status_code == 404

    heartbeats_seen = threading.Event()

    def run_the_execution_once_heartbeats_were_seen() -> None:
        # The deadline only keeps a broken stream from hanging the test: without heartbeats
        # the execution runs anyway and the assertions below fail on the content.
        heartbeats_seen.wait(30)
        with application.app_context(), activate(acme.info):
            engine.run(execution["id"])

    worker = threading.Thread(target=run_the_execution_once_heartbeats_were_seen)
    worker.start()
    response = client.get(url, headers=ann.headers, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    chunks: list[str] = []
    # Read as a browser would, chunk by chunk. Nothing runs the execution until two
    # heartbeats arrived, so they can only have been sent while it waited in the queue.
    for chunk in response.response:
        chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        if chunks.count(": heartbeat\n\n") == 2:
            heartbeats_seen.set()
    heartbeats_seen.set()
    worker.join(60)
    assert not worker.is_alive()

    body = "".join(chunks)
    waiting = body[body.index('{"status": "queued"}'):body.index('{"status": "running"}')]
    assert waiting.count(": heartbeat\n\n") >= 2  # sent while the execution sat in the queue
    tokens = [line for line in body.splitlines() if line.startswith('data: {"text"')]
    assert "".join(t.split('"text": "', 1)[1].rsplit('"', 1)[0] for t in tokens) == (
        "Echo: beat then answer")
    assert body.rstrip().endswith('data: {"status": "succeeded"}')


def test_the_heartbeat_interval_must_be_positive():
    assert AgentsConfig.from_extra({}).sse_heartbeat_seconds == 15.0
    assert AgentsConfig.from_extra(
        {"ALBEDO_SSE_HEARTBEAT_SECONDS": "0.5"}).sse_heartbeat_seconds == 0.5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(AgentsConfigError, match="ALBEDO_SSE_HEARTBEAT_SECONDS"):
            AgentsConfig.from_extra({"ALBEDO_SSE_HEARTBEAT_SECONDS": bad})


def test_an_execution_over_without_its_end_event_ends_the_stream_with_its_outcome(
        make_agents_app, fake, acme, api_caller):
    # The worker commits the outcome just before it publishes the end event, and streams
    # expire: a reader in between (or after) must still learn how the execution ended.
    application = make_agents_app(ALBEDO_SSE_HEARTBEAT_SECONDS="0.02")
    client = host_client(application, acme.host)
    ann = api_caller(acme, email="ann@example.com")
    fake.script = [Step(status=401)]
    agent = client.post("/api/v1/agents", headers=ann.headers,
                        json={"name": "Helper", "slug": "helper", "version": VERSION}).get_json()
    execution = client.post(f"/api/v1/agents/{agent['id']}/executions", headers=ann.headers,
                            json={"input": "fails"}).get_json()
    with application.app_context(), activate(acme.info):
        engine.run(execution["id"])
        redis = get_redis()
        key = f"agents:stream:{execution['id']}"
        end_id = next(i for i, kind, _ in streaming.read(execution["id"]) if kind == "end")
        redis.xdel(key, end_id)  # as if read before the worker published it
    url = f"/api/v1/executions/{execution['id']}/stream"
    body = client.get(url, headers=ann.headers).get_data(as_text=True)
    last = body.rstrip().rsplit("\n\n", 1)[-1]
    assert last.startswith("event: end\ndata: ")
    ending = json.loads(last.split("data: ", 1)[1])
    assert ending["status"] == "failed" and ending["error"]["code"] == "provider_auth_failed"
    assert ending["error"]["message"]
    with application.app_context():
        get_redis().delete(key)  # expired altogether
    expired = client.get(url, headers=ann.headers).get_data(as_text=True)
    assert '"code": "provider_auth_failed"' in expired.rsplit("event: end", 1)[1]


def test_a_token_is_published_only_while_no_cancel_is_requested(app):
    """The run's per-token publication checks the cancel flag in the same step."""
    with app.app_context():
        first = streaming.publish_unless_cancelled("exec-1", "token", {"text": "a"})
        assert first is not None
        other = streaming.publish_unless_cancelled("exec-2", "token", {"text": "x"})
        streaming.request_cancel("exec-1")
        assert streaming.publish_unless_cancelled("exec-1", "token", {"text": "b"}) is None
        assert streaming.read("exec-1") == [(first, "token", {"text": "a"})]
        # Another execution's flag is its own.
        assert streaming.publish_unless_cancelled("exec-2", "token", {"text": "y"}) is not None
        assert [data["text"] for _, _, data in streaming.read("exec-2")] == ["x", "y"]
        assert other is not None and get_redis().ttl("agents:stream:exec-1") > 0
