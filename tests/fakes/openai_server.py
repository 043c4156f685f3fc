"""A local OpenAI-compatible HTTP server: the stand-in provider for every agents test.

Speaks ``POST /v1/chat/completions`` (streaming and not, with ``usage`` and tool calls) well
enough for the official ``openai`` client and LangChain's ``ChatOpenAI``. Tests script what
each request gets with :class:`Step` entries (the last one repeats): a reply, a tool call, an
HTTP error (401/429/500/400 context length), a stall before or after the first token. Stalls
wait on a :class:`threading.Event` the test releases, never on a timer, so tests stay
deterministic; ``latency`` (seconds before answering) exists only for the benchmark.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERRORS: dict[int, tuple[str, str, str]] = {
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    429: ("rate_limit_exceeded", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", "server_error", "The server had an error."),
    503: ("server_error", "overloaded", "The engine is currently overloaded."),
    400: ("invalid_request_error", "context_length_exceeded",
          "This model's maximum context length is 4096 tokens."),
}


@dataclass
class Step:
    """What one request gets. ``text=None`` echoes the last user message."""

    text: str | None = None
    status: int = 200
    tool_call: tuple[str, dict[str, Any]] | None = None  # (function name, arguments)
    # Stream this many chunks, then wait for ``release`` (a stall mid-stream), or if the
    # stream has not started (``stall_before=True``) hold the whole answer.
    stall_after_chunks: int | None = None
    stall_before: bool = False
    # Close the connection after the stall instead of finishing (a provider dropping us).
    drop_after_stall: bool = False


@dataclass
class FakeOpenAI:
    server: ThreadingHTTPServer
    script: list[Step] = field(default_factory=lambda: [Step()])
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    # Set when a request reaches a stall: tests wait on it instead of sleeping.
    stalled: threading.Event = field(default_factory=threading.Event)
    latency: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def next_step(self, body: dict[str, Any], headers: dict[str, str]) -> Step:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            index = min(len(self.requests) - 1, len(self.script) - 1)
            return self.script[index]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _words(text: str) -> list[str]:
    # One "token" per word, keeping the spaces so the chunks join back to the text.
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages", []):
        content = message.get("content") or ""
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        total += len(str(content).split()) + 3
    return total


def _answer_text(step: Step, body: dict[str, Any]) -> str:
    if step.text is not None:
        return step.text
    users = [m for m in body.get("messages", []) if m.get("role") in ("user", "tool")]
    last = users[-1].get("content") if users else ""
    return f"Echo: {last}"


def start_fake_openai(script: list[Step] | None = None, latency: float = 0.0) -> FakeOpenAI:
    holder: dict[str, FakeOpenAI] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [
                    {"id": "gpt-4o-mini", "object": "model", "owned_by": "fake"}]})
            else:
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})

        def do_POST(self) -> None:
            fake = holder["f"]
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})
                return
            step = fake.next_step(body, {k.lower(): v for k, v in self.headers.items()})
            if fake.latency:
                time.sleep(fake.latency)  # the benchmark's fixed provider latency
            if step.stall_before:
                fake.stalled.set()
                fake.release.wait(timeout=60)
                if step.drop_after_stall:
                    self.close_connection = True
                    return
            if step.status != 200:
                kind, code, message = ERRORS.get(step.status, ERRORS[500])
                self._json(step.status, {"error": {"message": message, "type": kind,
                                                   "param": None, "code": code}})
                return
            if body.get("stream"):
                self._stream(fake, step, body)
            else:
                self._json(200, _completion(step, body))

        def _chunk(self, payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            raw = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

        def _stream(self, fake: FakeOpenAI, step: Step, body: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            ident, created, model = _ids(body)
            base = {"id": ident, "object": "chat.completion.chunk", "created": created,
                    "model": model}
            first = {"index": 0, "delta": {"role": "assistant", "content": ""},
                     "finish_reason": None}
            self._chunk({**base, "choices": [first]})
            pieces: list[dict[str, Any]] = []
            if step.tool_call:
                name, args = step.tool_call
                pieces.append({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                               "function": {"name": name,
                                                            "arguments": json.dumps(args)}}]})
            else:
                pieces = [{"content": word} for word in _words(_answer_text(step, body))]
            try:
                for i, delta in enumerate(pieces):
                    if step.stall_after_chunks is not None and i == step.stall_after_chunks:
                        fake.stalled.set()
                        fake.release.wait(timeout=60)
                        if step.drop_after_stall:
                            self.close_connection = True
                            return
                    self._chunk({**base, "choices": [
                        {"index": 0, "delta": delta, "finish_reason": None}]})
                finish = "tool_calls" if step.tool_call else "stop"
                self._chunk({**base, "choices": [
                    {"index": 0, "delta": {}, "finish_reason": finish}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    self._chunk({**base, "choices": [], "usage": _usage(body, len(pieces))})
                self._chunk("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake = FakeOpenAI(server, script=script or [Step()], latency=latency)
    holder["f"] = fake
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake


def _ids(body: dict[str, Any]) -> tuple[str, int, str]:
    return f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time()), body.get("model", "unknown")


def _usage(body: dict[str, Any], completion: int) -> dict[str, int]:
    prompt = _prompt_tokens(body)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _completion(step: Step, body: dict[str, Any]) -> dict[str, Any]:
    ident, created, model = _ids(body)
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if step.tool_call:
        name, args = step.tool_call
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": name, "arguments": json.dumps(args)}}]
        finish, completion = "tool_calls", 5
    else:
        message["content"] = _answer_text(step, body)
        finish, completion = "stop", len(_words(message["content"]))
    return {"id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish,
                         "logprobs": None}],
            "usage": _usage(body, completion)}
