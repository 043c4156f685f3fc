"""A local stand-in for SendGrid's v3 Mail Send API (POST /v3/mail/send).

The official `sendgrid` client is pointed at it through its `host` argument, so the real
client builds and sends the real request; this server checks the API key and records the
JSON body, answering 202 with an X-Message-Id as SendGrid does. `fail_with` scripts errors.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeSendGrid:
    def __init__(self, api_key: str = "SG.test-key"):
        self.api_key = api_key
        self.messages: list[dict] = []
        self.fail_with: list[int] = []  # statuses to answer before succeeding
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v3/mail/send":
                    return self._send(404, {"errors": [{"message": "not found"}]})
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, {"errors": [{"message": "unauthorized"}]})
                if fake.fail_with:
                    return self._send(fake.fail_with.pop(0), {"errors": [{"message": "nope"}]})
                fake.messages.append(json.loads(body))
                self._send(202, None, {"X-Message-Id": uuid.uuid4().hex})

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
