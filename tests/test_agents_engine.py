"""Executions end to end on a real RQ worker, against the stand-in OpenAI provider."""

from __future__ import annotations

import json
import threading

import pytest

from app.agents import executions, streaming
from app.agents.models import Execution
from app.agents.service import Caller, get_agent
from app.errors import ApiError
from app.extensions import db
from tenants.context import activate
from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
    run_agents_worker,
    wait_until,
)
from tests.fakes.openai_server import Step
from tests.fakes.receiver import start_receiver


@pytest.fixture
def two_customers(acme, globex, make_user):
    ann = make_user(acme, "ann@example.com")
    # The same email in the other tenant: look-alike data that must never mix.
    gus = make_user(globex, "ann@example.com")
    return ann, gus


def _start(application, site, user_id, agent_id, text="hi", **kwargs):
    with application.app_context(), activate(site.info):
        caller = Caller(user_id, "USER")
        agent = get_agent(caller, agent_id)
        execution, created = executions.start_execution(caller, agent, input=text, **kwargs)
        return execution.id, created


def _load(application, site, execution_id) -> Execution:
    with application.app_context(), activate(site.info):
        execution = db.session.get(Execution, execution_id)
        db.session.expunge(execution)
        return execution


def test_async_run_streams_tokens_and_records_usage_per_tenant(
        make_agents_app, fake, acme, globex, two_customers):
    application = make_agents_app()
    ann, gus = two_customers
    acme_agent = make_agent(application, acme, ann)
    globex_agent = make_agent(application, globex, gus)
    first, created = _start(application, acme, ann, acme_agent, "hello world")
    second, _ = _start(application, globex, gus, globex_agent, "other words")
    assert created and _load(application, acme, first).status == "queued"
    run_agents_worker(application)

    done = _load(application, acme, first)
    assert done.status == "succeeded" and done.output == "Echo: hello world"
    assert done.completion_tokens == 3 and done.prompt_tokens > 0
    # gpt-4o-mini: 0.15 / 0.60 USD per million tokens, in micro-dollars.
    assert done.cost_micros == round(done.prompt_tokens * 0.15 + 3 * 0.60)
    assert done.queue_wait_ms is not None and done.run_ms is not None
    assert done.attempts == 1 and done.first_token_at is not None
    assert _load(application, globex, second).output == "Echo: other words"
    # The system prompt was rendered with the declared default.
    assert fake.requests[0]["messages"][0] == {"role": "system",
                                               "content": "You help Acme customers."}
    with application.app_context():
        events = streaming.read(str(first))
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "end"
    assert "".join(d["text"] for _, k, d in events if k == "token") == "Echo: hello world"
    # Globex cannot see Acme's execution, even by id.
    with application.app_context(), activate(globex.info), pytest.raises(ApiError) as err:
        executions.get_execution(Caller(gus, "USER"), first)
    assert err.value.status == 404


def test_transient_error_is_retried_before_the_first_token(make_agents_app, fake, acme,
                                                           two_customers):
    application = make_agents_app()
    ann, _ = two_customers
    agent = make_agent(application, acme, ann)
    fake.script = [Step(status=500), Step(status=429), Step(text="finally")]
    execution_id, _ = _start(application, acme, ann, agent)
    run_agents_worker(application)
    done = _load(application, acme, execution_id)
    assert done.status == "succeeded" and done.output == "finally"
    assert len(fake.requests) == 3


def test_no_retry_once_tokens_have_streamed(make_agents_app, fake, acme, two_customers):
    application = make_agents_app()
    ann, _ = two_customers
    agent = make_agent(application, acme, ann)
    fake.release.set()  # the "stall" is immediate: two chunks, then the provider hangs up
    fake.script = [Step(text="one two three", stall_after_chunks=2, drop_after_stall=True),
                   Step(text="should never be asked")]
    execution_id, _ = _start(application, acme, ann, agent)
    run_agents_worker(application)
    done = _load(application, acme, execution_id)
    assert done.status == "failed" and done.error_code == "provider_unavailable"
    assert done.output == "one two"  # what the user already saw is kept
    assert len(fake.requests) == 1


@pytest.mark.parametrize(("status", "code", "requests"), [
    (401, "provider_auth_failed", 1),
    (400, "context_too_long", 1),
    (429, "provider_rate_limited", 3),  # retried twice (ALBEDO_AGENTS_RETRIES=2), then given up
])
def test_provider_errors_become_clear_codes(make_agents_app, fake, acme, two_customers,
                                            status, code, requests):
    application = make_agents_app(ALBEDO_AGENTS_RETRIES="2")
    ann, _ = two_customers
    agent = make_agent(application, acme, ann)
    fake.script = [Step(status=status)]
    execution_id, _ = _start(application, acme, ann, agent)
    run_agents_worker(application)
    done = _load(application, acme, execution_id)
    assert (done.status, done.error_code) == ("failed", code)
    assert len(fake.requests) == requests


@pytest.mark.parametrize(("deadline", "step", "job_timeout", "output"), [
    pytest.param("1", Step(stall_before=True), None, "", id="before-the-first-token"),
    pytest.param("1", Step(text="one two three", stall_after_chunks=1), None, "one",
                 id="after-the-first-token"),
    pytest.param(None, Step(stall_before=True), 1, "", id="the-workers-job-timeout"),
])
def test_hard_timeout(make_agents_app, fake, acme, two_customers, monkeypatch, deadline, step,
                      job_timeout, output):
    """The engine's own deadline ends a stalled provider call, before or after the first
    token; behind it, the worker's job timeout (a SIGALRM in the worker process, which runs
    the job itself) ends a run stuck past it. Either way: timed_out, and never retried."""
    from dataclasses import replace

    from jobs import registry

    application = make_agents_app(ALBEDO_AGENTS_TIMEOUT_SECONDS=deadline)  # default: 120 s
    if job_timeout:
        task = registry.get_task(executions.TASK)
        monkeypatch.setitem(registry._TASKS, executions.TASK, replace(task, timeout=job_timeout))
    ann, _ = two_customers
    agent = make_agent(application, acme, ann)
    fake.script = [step]
    execution_id, _ = _start(application, acme, ann, agent)
    run_agents_worker(application)
    fake.release.set()
    done = _load(application, acme, execution_id)
    assert (done.status, done.error_code, done.output) == ("timed_out", "execution_timeout",
                                                           output)
    assert len(fake.requests) == 1


def test_cancel_a_queued_execution_never_calls_the_provider(make_agents_app, fake, acme,
                                                            two_customers):
    application = make_agents_app()
    ann, _ = two_customers
    agent = make_agent(application, acme, ann)
    execution_id, _ = _start(application, acme, ann, agent)
    with application.app_context(), activate(acme.info):
        caller = Caller(ann, "USER")
        executions.cancel(caller, executions.get_execution(caller, execution_id))
    run_agents_worker(application)
    assert _load(application, acme, execution_id).status == "cancelled"
    assert fake.requests == []


def test_a_cancel_just_after_the_claim_never_calls_the_provider(make_agents_app, fake, acme,
                                                                two_customers, monkeypatch):
    """The cancel lands between the claim and the provider call: the "running" event (which
    checks the flag in the same step) is not sent and the provider is never called."""
    from app.agents import engine

    application = make_agents_app()
    ann, _ = two_customers
    agent = make_agent(application, acme, ann)
    execution_id, _ = _start(application, acme, ann, agent)
    claim = engine.claim

    def claim_then_cancel(execution):
        claimed = claim(execution)
        executions.cancel(Caller(ann, "USER"), execution)  # now running: the flag is set
        return claimed

    monkeypatch.setattr(engine, "claim", claim_then_cancel)
    with application.app_context(), activate(acme.info):
        assert engine.run(str(execution_id))["status"] == "cancelled"
        events = [kind for _, kind, _ in streaming.read(str(execution_id))]
    assert _load(application, acme, execution_id).status == "cancelled"
    assert fake.requests == []
    assert events == ["status", "end"]  # queued, then the end: never "running"


def test_cancel_a_running_execution_stops_it_at_the_next_chunk(make_agents_app, fake, acme,
                                                               two_customers):
    from app.agents import engine

    application = make_agents_app()
    ann, _ = two_customers
    agent = make_agent(application, acme, ann)
    fake.script = [Step(text="a b c d", stall_after_chunks=1)]
    execution_id, _ = _start(application, acme, ann, agent)

    def work():
        with application.app_context(), activate(acme.info):
            engine.run(str(execution_id))

    worker = threading.Thread(target=work)
    worker.start()
    # Generous deadlines: on a loaded 2-core machine a thread can wait seconds for the CPU.
    assert fake.stalled.wait(60)
    with application.app_context(), activate(acme.info):
        # The server has sent "a": cancel once the run has passed it on (else the cancel
        # can beat the first token and the output is rightly empty).
        wait_until(lambda: any(kind == "token" for _, kind, _ in
                               streaming.read(str(execution_id))), 60, "the first token")
        caller = Caller(ann, "USER")
        running = executions.get_execution(caller, execution_id)
        assert running.status == "running"
        executions.cancel(caller, running)
    fake.release.set()
    worker.join(60)
    assert not worker.is_alive()
    done = _load(application, acme, execution_id)
    assert (done.status, done.output) == ("cancelled", "a")


def test_without_a_provider_executing_says_how_to_configure_one(make_agents_app, acme,
                                                                 two_customers):
    application = make_agents_app(OPENAI_BASE_URL="", OPENAI_API_KEY="")
    ann, _ = two_customers
    agent = make_agent(application, acme, ann)
    with pytest.raises(ApiError) as err:
        _start(application, acme, ann, agent)
    assert err.value.code == "provider_not_configured"
    assert "OPENAI_API_KEY" in err.value.message


def test_a_tenant_key_is_encrypted_and_used_only_for_that_tenant(
        make_agents_app, fake, acme, globex, two_customers, owner_engine):
    import sqlalchemy as sa

    from app.agents.provider import set_tenant_provider

    application = make_agents_app()
    ann, gus = two_customers
    with application.app_context(), activate(acme.info):
        set_tenant_provider("sk-acme-own", fake.base_url)
        db.session.commit()
    with owner_engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # row-level security binds the owner too
            conn.execute(sa.text("SELECT set_config('app.cross_tenant', 'on', true)"))
        stored = conn.execute(sa.text("SELECT api_key_encrypted FROM agent_provider_settings")
                              ).scalar_one()
    assert "sk-acme-own" not in stored
    _start(application, acme, ann, make_agent(application, acme, ann))
    _start(application, globex, gus, make_agent(application, globex, gus))
    run_agents_worker(application)
    keys = sorted(h["authorization"] for h in fake.headers)
    assert keys == ["Bearer sk-acme-own", "Bearer sk-platform"]


def test_conversation_history_is_sent_and_trimmed_to_the_context(make_agents_app, fake, acme,
                                                                 two_customers):
    # A tiny context window: 1024 output tokens + room for only the recent turns.
    application = make_agents_app(ALBEDO_MODEL_CONTEXT='{"gpt-4o-mini": 1200}')
    ann, _ = two_customers
    agent = make_agent(application, acme, ann)
    first, _ = _start(application, acme, ann, agent, "first " + "x" * 200)
    run_agents_worker(application)
    conversation = _load(application, acme, first).conversation_id
    _start(application, acme, ann, agent, "second", conversation_id=conversation)
    run_agents_worker(application)
    sent = [m["content"] for m in fake.requests[1]["messages"]]
    assert sent[-1] == "second" and sent[1].startswith("first ")
    _start(application, acme, ann, agent, "third " + "y" * 300,
           conversation_id=conversation)
    run_agents_worker(application)
    sent = [m["content"] for m in fake.requests[2]["messages"]]
    # The oldest message no longer fits; the newer ones do.
    assert not any(s.startswith("first ") for s in sent)
    assert any(s.startswith("Echo: first ") for s in sent)
    assert "second" in sent and sent[-1].startswith("third ")


def test_http_tool_posts_through_the_guard_and_feeds_the_answer_back(
        make_agents_app, fake, acme, two_customers):
    receiver = start_receiver()
    try:
        receiver.script = [(200, {"Content-Type": "application/json"}, b'{"order": "shipped"}')]
        application = make_agents_app(ALBEDO_SSRF_ALLOW=f"127.0.0.1:{receiver.port}")
        ann, _ = two_customers
        version = {"model": "gpt-4o-mini", "tools": [
            {"type": "http", "name": "order_status", "url": receiver.url("/hook")},
            {"type": "http", "name": "metadata", "url": "http://169.254.169.254/latest"}]}
        agent = make_agent(application, acme, ann, version=version)
        fake.script = [Step(tool_call=("order_status", {"payload": {"id": 7}})),
                       Step(tool_call=("metadata", {"payload": {}})),
                       Step(text="It shipped.")]
        execution_id, _ = _start(application, acme, ann, agent, "where is order 7?")
        run_agents_worker(application)
        done = _load(application, acme, execution_id)
        assert done.status == "succeeded" and done.output == "It shipped."
        assert len(receiver.requests) == 1
        assert json.loads(receiver.requests[0].body) == {"id": 7}
        tool_answers = [m for m in fake.requests[2]["messages"] if m["role"] == "tool"]
        assert tool_answers[0]["content"] == '{"order": "shipped"}'
        assert "not allowed" in tool_answers[1]["content"]
    finally:
        receiver.close()


def test_the_job_timeout_follows_the_agents_timeout(make_agents_app, acme, two_customers):
    from rq.job import Job

    from app.agents.tasks import SWEEP_GRACE

    application = make_agents_app(ALBEDO_AGENTS_TIMEOUT_SECONDS="40")
    ann, _ = two_customers
    execution_id, _ = _start(application, acme, ann, make_agent(application, acme, ann))
    with application.app_context():
        from app.redis import get_redis

        job = Job.fetch(executions.job_id_for(execution_id), connection=get_redis())
    # Past the engine's deadline, and before the sweeper would start the run again.
    assert 40 < job.timeout < 40 + SWEEP_GRACE.total_seconds()


def test_provider_clients_are_kept_per_tenant_base_url_and_key(acme, globex):
    from app.agents.provider import Provider, client_for

    url = "http://127.0.0.1:9/v1"
    mine = client_for(Provider("sk-shared", url, acme.info.id))
    assert client_for(Provider("sk-shared", url, acme.info.id)) is mine  # reused
    # The same key and server for another tenant: never the same client.
    theirs = client_for(Provider("sk-shared", url, globex.info.id))
    assert theirs is not mine and theirs.api_key == "sk-shared"
    # A changed key (or server) is a new client; the old one is not handed out again.
    rotated = client_for(Provider("sk-rotated", url, acme.info.id))
    assert rotated is not mine and rotated.api_key == "sk-rotated"
    moved = client_for(Provider("sk-rotated", "http://127.0.0.1:10/v1", acme.info.id))
    assert moved is not rotated and str(moved.base_url).startswith("http://127.0.0.1:10/")
    assert client_for(Provider("sk-shared", url, acme.info.id)) is not mine
    assert client_for(Provider("sk-shared", url, globex.info.id)) is theirs


def test_one_worker_uses_each_tenants_current_key_run_after_run(make_agents_app, fake, acme,
                                                                globex, two_customers):
    """Runs in one worker process (its provider clients kept between runs): a changed key is
    used from the next run on, and a tenant's key never goes out for the other tenant."""
    from app.agents.provider import set_tenant_provider

    application = make_agents_app()
    ann, gus = two_customers
    callers = {"acme": (acme, ann, make_agent(application, acme, ann)),
               "globex": (globex, gus, make_agent(application, globex, gus))}

    def set_key(site, key):
        with application.app_context(), activate(site.info):
            set_tenant_provider(key, fake.base_url)
            db.session.commit()

    def run(*names):
        for name in names:
            _start(application, *callers[name])
        run_agents_worker(application)

    run("acme", "globex")  # both on the platform's key
    set_key(acme, "sk-acme-1")
    run("acme", "globex", "acme")
    set_key(acme, "sk-acme-2")
    set_key(globex, "sk-globex")
    run("globex", "acme", "globex")
    assert [h["authorization"].removeprefix("Bearer ") for h in fake.headers] == [
        "sk-platform", "sk-platform",
        "sk-acme-1", "sk-platform", "sk-acme-1",
        "sk-globex", "sk-acme-2", "sk-globex"]
