"""An open stream's resources go as soon as its client or its worker does.

In-process: closing the response releases the stream hub's subscription. Under the production
server (gunicorn.conf.py, the gevent worker): a client that closes its socket mid-stream, and
a worker told to stop, bring the server's open-stream gauge (/healthz ``streams``) back down
long before any heartbeat would have noticed (the heartbeat is set to a minute here).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from app.streamhub import open_streams
from tests.agents_support import (  # noqa: F401  (fixtures)
    VERSION,
    fake,
    make_agents_app,
    wait_until,
)
from tests.conftest import host_client

ROOT = Path(__file__).resolve().parent.parent


def _queued_execution(client, headers) -> str:
    agent = client.post("/api/v1/agents", headers=headers,
                        json={"name": "Helper", "slug": "helper", "version": VERSION}).get_json()
    execution = client.post(f"/api/v1/agents/{agent['id']}/executions", headers=headers,
                            json={"input": "nobody runs this"}).get_json()
    return execution["id"]


def test_closing_a_stream_response_releases_its_subscription(make_agents_app, acme, globex,
                                                             api_caller):
    application = make_agents_app(ALBEDO_SSE_HEARTBEAT_SECONDS="60")
    client = host_client(application, acme.host)
    ann = api_caller(acme, email="ann@example.com")
    api_caller(globex, email="ann@example.com")
    execution_id = _queued_execution(client, ann.headers)

    response = client.get(f"/api/v1/executions/{execution_id}/stream", headers=ann.headers,
                          buffered=False)
    chunks = iter(response.response)
    seen = ""
    while '"queued"' not in seen:  # the catch-up read, then the stream waits on the hub
        seen += next(chunks).decode()
    wait_until(lambda: open_streams(application) == 1, what="the stream is subscribed")
    response.close()
    assert open_streams(application) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def production_server(migrated, test_environ, app, fake):
    """gunicorn with the production configuration, one worker, on this test's database."""
    port = _free_port()
    env = {**test_environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-platform",
           "ALBEDO_SSE_HEARTBEAT_SECONDS": "60", "FLASK_APP": "wsgi"}
    # The embedded Redis is shared through the instance folder; a REDIS_URL passes through.
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", "/dev/null"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode()[-2000:])
        try:
            return requests.get(f"{base}/healthz", timeout=5).ok
        except requests.RequestException:
            return False

    wait_until(up, timeout=60, what="gunicorn answers")
    yield proc, port
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _gauge(port: int) -> int:
    return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["streams"]


def _open_stream(port: int, host: str, path: str, headers: dict[str, str]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Accept: text/event-stream",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock.sendall("\r\n".join(lines).encode())
    received = b""
    while b'"queued"' not in received:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    return sock


def test_a_client_gone_mid_stream_is_released_by_the_production_server(
        production_server, make_agents_app, acme, api_caller):
    proc, port = production_server
    application = make_agents_app()
    ann = api_caller(acme, email="ann@example.com")
    execution_id = _queued_execution(host_client(application, acme.host), ann.headers)
    path = f"/api/v1/executions/{execution_id}/stream"

    first = _open_stream(port, acme.host, path, ann.headers)
    second = _open_stream(port, acme.host, path, ann.headers)
    wait_until(lambda: _gauge(port) == 2, what="two open streams")
    first.close()  # the client goes away; the next heartbeat is a minute off
    wait_until(lambda: _gauge(port) == 1, timeout=15, what="the closed stream released")

    # The worker is told to stop: the stream still open ends (EOF) instead of being held
    # through the graceful timeout, and the worker exits.
    proc.send_signal(signal.SIGTERM)
    second.settimeout(15)
    tail = b""
    while chunk := second.recv(4096):
        tail += chunk
    assert tail.endswith(b"0\r\n\r\n")  # the chunked body was ended, not cut
    second.close()
    proc.wait(30)
    assert proc.returncode == 0


if os.name != "posix":  # pragma: no cover - gunicorn is POSIX-only
    pytestmark = pytest.mark.skip(reason="gunicorn runs on POSIX only")
