"""A worker killed with SIGKILL mid-run leaves no execution stuck in `running`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from app import clock
from app.agents.models import Execution
from app.agents.service import Caller, get_agent
from app.agents.tasks import SWEEP_GRACE, sweep
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

ROOT = Path(__file__).resolve().parent.parent


def _start(application, site, user_id, agent_id):
    from app.agents import executions

    with application.app_context(), activate(site.info):
        caller = Caller(user_id, "USER")
        execution, _ = executions.start_execution(caller, get_agent(caller, agent_id),
                                                  input="hello")
        return execution.id


def _load(application, site, execution_id) -> Execution:
    with application.app_context(), activate(site.info):
        execution = db.session.get(Execution, execution_id)
        db.session.expunge(execution)
        return execution


def _kill_worker_mid_run(test_environ, fake, condition, fork: bool = False) -> None:
    """A real RQ worker in its own process group, SIGKILLed once ``condition``: the process
    that runs the execution (or, with ``--fork``, its parent and work horse together)."""
    env = {**test_environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-platform"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobs.worker", "--queue", "agents", "--burst",
         *(["--fork"] if fork else [])], cwd=ROOT,
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(condition, timeout=60, what="the worker to be mid-run")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # no goodbye
        worker.wait(10)


def _after_the_deadline() -> None:
    later = clock.now() + timedelta(seconds=120) + SWEEP_GRACE + timedelta(seconds=1)
    clock.set_clock(lambda: later)


@pytest.fixture
def people(acme, globex, make_user):
    return make_user(acme, "ann@example.com"), make_user(globex, "ann@example.com")


def test_killed_after_tokens_streamed_the_execution_fails_and_is_not_retried(
        make_agents_app, fake, acme, globex, people, test_environ):
    application = make_agents_app()
    ann, gus = people
    agent = make_agent(application, acme, ann)
    fake.script = [Step(text="one two three", stall_after_chunks=1), Step(text="never")]
    execution_id = _start(application, acme, ann, agent)
    # A look-alike execution in the other tenant, still queued: the sweeper leaves it be.
    other = _start(application, globex, gus, make_agent(application, globex, gus))
    _kill_worker_mid_run(test_environ, fake, lambda: fake.stalled.is_set() and _load(
        application, acme, execution_id).first_token_at is not None)
    assert _load(application, acme, execution_id).status == "running"
    with application.app_context():
        assert sweep() == {"requeued": 0, "failed": 0, "skipped": 0}  # not past its deadline
        _after_the_deadline()
        assert sweep() == {"requeued": 0, "failed": 1, "skipped": 0}
    done = _load(application, acme, execution_id)
    assert (done.status, done.error_code) == ("failed", "worker_lost")
    assert _load(application, globex, other).status == "queued"


@pytest.mark.parametrize("fork", [False, True], ids=["in-process", "fork"])
def test_killed_before_the_first_token_the_execution_is_retried_and_succeeds(
        make_agents_app, fake, acme, people, test_environ, fork):
    application = make_agents_app()
    ann, _ = people
    agent = make_agent(application, acme, ann)
    fake.script = [Step(stall_before=True), Step(text="recovered")]
    execution_id = _start(application, acme, ann, agent)
    _kill_worker_mid_run(test_environ, fake, fake.stalled.is_set, fork)
    with application.app_context():
        _after_the_deadline()
        assert sweep()["requeued"] == 1
    assert _load(application, acme, execution_id).status == "queued"
    run_agents_worker(application)
    done = _load(application, acme, execution_id)
    assert (done.status, done.output, done.attempts) == ("succeeded", "recovered", 2)
