"""The sandbox in a real browser: the answer appears token by token while the worker runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.agents_support import (  # noqa: F401  (fixtures)
    fake,
    make_agent,
    make_agents_app,
    wait_until,
)
from tests.fakes.openai_server import Step

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install "
                                                "chromium); CI installs it"),
]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent


def test_sandbox_streams_an_answer(make_agents_app, fake, acme, globex, make_user,
                                   test_environ):
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    application = make_agents_app()
    ann = make_user(acme, "ann@example.com")
    make_user(globex, "ann@example.com")
    agent_id = make_agent(application, acme, ann)
    # The provider sends two tokens, then holds the rest until the test has seen them.
    fake.script = [Step(text="Hello from the sandbox", stall_after_chunks=2)]
    server = make_server("127.0.0.1", 0, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**test_environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-platform"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobs.worker", "--queue", "agents"], cwd=ROOT, env=env,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://acme.localhost:{server.server_port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{base}/login")
            page.fill("#email", "ann@example.com")
            page.fill("#password", "correct horse battery")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            page.goto(f"{base}/agents/{agent_id}/sandbox")
            page.fill("#input", "hi")
            page.click("#send")
            reply = page.get_by_test_id("reply")
            # Mid-stream: the first tokens are on screen while the provider still holds the rest.
            assert fake.stalled.wait(60)
            reply.filter(has_text="Hello from").wait_for(timeout=30_000)
            assert reply.inner_text() == "Hello from"
            fake.release.set()
            page.get_by_test_id("chat-status").filter(has_text="succeeded").wait_for(
                timeout=30_000)
            assert reply.inner_text() == "Hello from the sandbox"
            browser.close()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        server.shutdown()
