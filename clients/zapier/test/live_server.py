"""A live local Albedo for the Zapier app's node tests.

Builds a throw-away instance (SQLite and the embedded Redis in a temporary folder, the real
migrations), onboards reseller "acme" (license key prefix ACME) served at 127.0.0.1, creates a
reseller user with an API key, then serves the real app over HTTP and runs a real worker on
the `agents`, `webhooks` and `emails` queues. The SSRF guard lets exactly the node test's
receiver port through (ALBEDO_SSRF_ALLOW).

The actions' prerequisites are seeded: a published agent whose executions go to the
stand-in OpenAI server (tests/fakes/openai_server.py, started here; it answers
"Echo: <input>"), and a product with a policy to issue licenses from.

A small control server stands in for the rest:

* ``POST /emit {"event": ..., "data": {...}}`` calls app.integrations.events.emit() in acme
  (the features that emit events) and answers how many deliveries it owes;
* ``POST /provider {"status": 401}`` scripts what the stand-in provider answers from now on
  (the fields of its ``Step``); ``{}`` restores the echo. ``GET /provider`` answers the
  requests it received so far (their bodies: model, messages…).

Prints one JSON line (base_url, api_key, control_url, agent_id, policy_id, product_code,
key_prefix) once ready. Stops on SIGTERM or SIGINT, and then stops everything it started,
the embedded Redis included (as the pytest fixture does), and removes the instance folder.
Usage: python live_server.py <receiver_port>
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

KEY_PREFIX = "ACME"
PRODUCT_CODE = "zap-pro"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_app(instance: str, app_port: int, receiver_port: int, provider_url: str):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "MIGRATIONS_DATABASE_URL", "REDIS_URL",
                            "OPENAI_API_KEY", "OPENAI_BASE_URL")}
    environ.update({
        "ALBEDO_ENV": "testing", "ALBEDO_INSTANCE_PATH": instance, "ALBEDO_LOG_LEVEL": "WARNING",
        "ALBEDO_PLATFORM_DOMAIN": "localhost", "ALBEDO_PUBLIC_PORT": str(app_port),
        "DATABASE_URL": f"sqlite:///{instance}/zap.sqlite3",
        "ALBEDO_SSRF_ALLOW": f"127.0.0.1:{receiver_port}",
        # The platform's provider is the stand-in; retrying a transient failure does not wait.
        "OPENAI_BASE_URL": provider_url, "OPENAI_API_KEY": "sk-zapier-live",
        "ALBEDO_AGENTS_RETRY_BACKOFF": "0",
    })
    from app import create_app
    from app.settings import Settings

    return create_app(Settings.from_env(environ))


def seed(app) -> tuple[Any, dict[str, str]]:
    """The tenant, its reseller's API key, a published agent, a product and its policy."""
    from flask_migrate import upgrade

    from app.agents.service import Caller, create_agent
    from app.auth.api_keys import create_key
    from app.auth.principal import SCOPES
    from app.auth.service import create_user
    from app.extensions import db
    from app.licensing.service import PolicyInput, create_policy, create_product
    from tenants.context import activate
    from tenants.service import (
        Branding,
        add_domain,
        create_tenant,
        info_for,
        mark_domain_verified,
        set_primary_domain,
    )

    with app.app_context():
        upgrade()
        create_tenant("platform", "Platform", "platform", Branding())
        tenant = create_tenant("acme", "Acme Agents", "reseller",
                               Branding(license_key_prefix=KEY_PREFIX))
        domain = mark_domain_verified(add_domain(tenant, "127.0.0.1"))
        set_primary_domain(domain)
        db.session.commit()
        info = info_for(tenant)
        with activate(info):
            user = create_user("zapier@acme.example", "correct horse battery",
                               role="RESELLER", verified=True)
            db.session.flush()
            _key, raw_key = create_key(user, "zapier test", list(SCOPES))
            agent = create_agent(Caller(user.id, "RESELLER"), name="Helper", slug="helper",
                                 version={"model": "gpt-4o-mini",
                                          "system_prompt": "You help Acme customers."})
            product = create_product("Zap Pro", PRODUCT_CODE, [str(agent.id)])
            policy = create_policy(product, PolicyInput(name="Yearly", duration_days=365))
            db.session.commit()
            seeded = {"api_key": raw_key, "agent_id": str(agent.id),
                      "policy_id": str(policy.id), "product_code": PRODUCT_CODE,
                      "key_prefix": KEY_PREFIX}
    return info, seeded


def control_server(app, info, provider, step_class) -> ThreadingHTTPServer:
    from app.extensions import db
    from tenants.context import activate

    def event_deliveries(event_id):
        from sqlalchemy import select

        from app.integrations.models import WebhookDelivery

        return db.session.scalars(select(WebhookDelivery.id).where(
            WebhookDelivery.event_id == event_id)).all()

    class Control(BaseHTTPRequestHandler):
        def do_GET(self):
            self.answer({"requests": list(provider.requests)})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            if self.path == "/provider":
                provider.script = [step_class(**body)]
                self.answer({"script": body})
                return
            from app.integrations.events import emit

            with app.app_context(), activate(info):
                event = emit(body["event"], body["data"])
                owed = len(event_deliveries(event.id))
                db.session.commit()
                self.answer({"id": event.public_id, "deliveries": owed})

        def answer(self, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Control)


def work_until(app, stop: threading.Event) -> None:
    """The worker, in the main thread (RQ's job timeouts use SIGALRM), in bursts until stopped."""
    from rq import SimpleWorker

    from jobs.worker import run_worker

    # RQ's own SIGTERM/SIGINT handlers would swallow a signal that lands during a burst (the
    # burst ends, the loop goes on, nothing stops): keep ours, which only set ``stop``, so a
    # job in progress finishes and the loop ends after the burst.
    SimpleWorker._install_signal_handlers = lambda self: None
    while not stop.is_set():
        run_worker(app, ["agents", "webhooks", "emails"], burst=True, simple=True)
        time.sleep(0.2)  # not stop.wait(): the signal handler sets it in this very thread


def main() -> int:
    receiver_port = int(sys.argv[1])
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # Short path: a unix socket path (the embedded Redis's) must stay under 108 bytes.
    instance = tempfile.mkdtemp(prefix="albedo-zap-")
    servers: list = []
    from tests.fakes.openai_server import Step, start_fake_openai

    provider = start_fake_openai()
    try:
        app_port = free_port()
        app = build_app(instance, app_port, receiver_port, provider.base_url)
        info, seeded = seed(app)

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        for server in (make_server("127.0.0.1", app_port, app, threaded=True),
                       control_server(app, info, provider, Step)):
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)  # only a serving server can be shut down
        if stop.is_set():
            return 0
        print(json.dumps({
            "base_url": f"http://127.0.0.1:{app_port}/api/v1",
            "control_url": f"http://127.0.0.1:{servers[1].server_address[1]}", **seeded,
        }), flush=True)
        work_until(app, stop)
        return 0
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        provider.close()
        from app import embedded_redis

        # Throwaway, as in tests/conftest.py: no final save into a folder being removed.
        embedded_redis.stop(instance, save=False)
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
