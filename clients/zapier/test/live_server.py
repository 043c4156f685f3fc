"""A live local Albedo for the Zapier app's node tests.

Builds a throw-away instance (SQLite and the embedded Redis in a temporary folder, the real
migrations), onboards reseller "acme" served at 127.0.0.1, creates a reseller user with an
API key, then serves the real app over HTTP and runs a real worker on the `webhooks` queue.
The SSRF guard lets exactly the node test's receiver port through (ALBEDO_SSRF_ALLOW).

A small control server stands in for the features that emit events (agents, licensing):
``POST /emit {"event": ..., "data": {...}}`` calls app.integrations.events.emit() in acme
and answers how many deliveries it owes.

Prints one JSON line with base_url, api_key and control_url once ready; stops on SIGTERM.
Usage: python live_server.py <receiver_port>
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    receiver_port = int(sys.argv[1])
    app_port = free_port()
    instance = tempfile.mkdtemp(prefix="albedo-zap-")
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "MIGRATIONS_DATABASE_URL", "REDIS_URL")}
    environ.update({
        "ALBEDO_ENV": "testing", "ALBEDO_INSTANCE_PATH": instance, "ALBEDO_LOG_LEVEL": "WARNING",
        "ALBEDO_PLATFORM_DOMAIN": "localhost", "ALBEDO_PUBLIC_PORT": str(app_port),
        "DATABASE_URL": f"sqlite:///{instance}/zap.sqlite3",
        "ALBEDO_SSRF_ALLOW": f"127.0.0.1:{receiver_port}",
    })
    from flask_migrate import upgrade

    from app import create_app
    from app.auth.api_keys import create_key
    from app.auth.principal import SCOPES
    from app.auth.service import create_user
    from app.extensions import db
    from app.settings import Settings
    from tenants.context import activate
    from tenants.service import (
        Branding,
        add_domain,
        create_tenant,
        info_for,
        mark_domain_verified,
        set_primary_domain,
    )

    app = create_app(Settings.from_env(environ))
    with app.app_context():
        upgrade()
        create_tenant("platform", "Platform", "platform", Branding())
        tenant = create_tenant("acme", "Acme Agents", "reseller", Branding())
        domain = mark_domain_verified(add_domain(tenant, "127.0.0.1"))
        set_primary_domain(domain)
        db.session.commit()
        info = info_for(tenant)
        with activate(info):
            user = create_user("zapier@acme.example", "correct horse battery",
                               role="RESELLER", verified=True)
            db.session.flush()
            _key, raw_key = create_key(user, "zapier test", list(SCOPES))
            db.session.commit()

    from werkzeug.serving import make_server

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    web = make_server("127.0.0.1", app_port, app, threaded=True)
    threading.Thread(target=web.serve_forever, daemon=True).start()

    class Control(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            from app.integrations.events import emit

            with app.app_context(), activate(info):
                event = emit(body["event"], body["data"])
                owed = len(event_deliveries(event.id))
                db.session.commit()
                answer = json.dumps({"id": event.public_id, "deliveries": owed}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    def event_deliveries(event_id):
        from sqlalchemy import select

        from app.integrations.models import WebhookDelivery

        return db.session.scalars(select(WebhookDelivery.id).where(
            WebhookDelivery.event_id == event_id)).all()

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({
        "base_url": f"http://127.0.0.1:{app_port}/api/v1", "api_key": raw_key,
        "control_url": f"http://127.0.0.1:{control.server_address[1]}",
    }), flush=True)
    # The worker runs here, in the main thread (RQ installs signal handlers).
    from rq.exceptions import StopRequested

    from jobs.worker import run_worker

    try:
        while not stop.is_set():
            run_worker(app, ["webhooks", "emails"], burst=True, simple=True)
            time.sleep(0.2)
    except StopRequested:  # RQ's own SIGTERM handler stays installed between bursts
        pass
    web.shutdown()
    control.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
