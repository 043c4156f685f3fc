"""A local stand-in for Sentry's ingestion: accepts envelopes at /api/<project>/envelope/.

An envelope is newline-delimited JSON: a header line, then for each item a header line and
a payload (``length`` bytes when the item header says so, else up to the next newline).
The stand-in keeps every event item it receives, decoded, for a test to read.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/api/(\d+)/envelope/?$")


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict, bytes]]]:
    header_line, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item = json.loads(item_line)
        if "length" in item:
            payload, rest = rest[:item["length"]], rest[item["length"]:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item, payload))
    return json.loads(header_line), items


@dataclass
class FakeSentry:
    server: ThreadingHTTPServer
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def dsn(self, project: int = 42) -> str:
        return f"http://public-key@127.0.0.1:{self.server.server_address[1]}/{project}"

    def wait_for_events(self, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events) >= count:
                return self.events
            time.sleep(0.02)
        raise AssertionError(f"the Sentry stand-in got {len(self.events)} events, "
                             f"wanted {count}; rejected: {self.rejected}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_fake_sentry() -> FakeSentry:
    holder: dict[str, FakeSentry] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            fake = holder["f"]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not _PATH.match(self.path):
                fake.rejected.append(self.path)
                self._answer(404)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            elif self.headers.get("Content-Encoding"):
                fake.rejected.append(f"encoding {self.headers.get('Content-Encoding')}")
                self._answer(415)
                return
            fake.raw.append(body)
            header, items = parse_envelope(body)
            fake.envelopes.append(header)
            for item, payload in items:
                if item.get("type") == "event":
                    fake.events.append(json.loads(payload))
            self._answer(200, b'{"id": "' + str(header.get("event_id", "")).encode() + b'"}')

        def _answer(self, status: int, payload: bytes = b"{}"):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeSentry(server)
    holder["f"] = fake
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake
