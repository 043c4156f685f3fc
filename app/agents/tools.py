"""Agent tools. One kind for now: ``http``, which POSTs the model's arguments as JSON to a
configured URL (an n8n or Zapier catch hook, say) and hands the answer back to the model.

Every call goes out through the platform's SSRF guard (app.integrations.ssrf.safe_request):
the URL is a customer's input, and the worker must not become a way into our network.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from app.errors import ApiError
from app.integrations.ssrf import SsrfBlocked, safe_request

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_TIMEOUT_SECONDS = 10.0
MAX_ANSWER_CHARS = 8000


def validate_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    clean: list[dict[str, Any]] = []
    names: set[str] = set()
    for tool in tools:
        if tool.get("type", "http") != "http":
            raise ApiError(422, "invalid_tool", "The only tool type is 'http'.")
        name = tool.get("name", "")
        if not TOOL_NAME.match(str(name)) or name in names:
            raise ApiError(422, "invalid_tool", f"Tool name {name!r} is invalid or repeated.")
        url = str(tool.get("url", ""))
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(422, "invalid_tool", f"Tool {name!r} needs an http(s) URL.")
        method = str(tool.get("method") or "POST").upper()
        if method not in ("POST", "GET"):
            raise ApiError(422, "invalid_tool", f"Tool {name!r} uses POST or GET.")
        names.add(name)
        clean.append({"type": "http", "name": name, "url": url, "method": method,
                      "description": str(tool.get("description", ""))[:1000]})
    return clean


def openai_tool_specs(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools as OpenAI function definitions: one free-form JSON ``payload`` argument."""
    return [{"type": "function", "function": {
        "name": tool["name"],
        "description": tool["description"] or f"POST a JSON payload to {tool['name']}",
        "parameters": {"type": "object", "properties": {
            "payload": {"type": "object", "description": "JSON body to send"}}},
    }} for tool in tools]


def call_tool(tools: list[dict[str, Any]], name: str, arguments: dict[str, Any]) -> str:
    """Run one tool call; failures become text the model can read, never a crash."""
    tool = next((t for t in tools if t["name"] == name), None)
    if tool is None:
        return f"error: no tool named {name!r}"
    payload = arguments.get("payload", arguments)
    method = tool.get("method", "POST")
    url = tool["url"]
    if method == "GET":  # the payload becomes the query string; a GET has no body
        query = urlencode({k: v if isinstance(v, str) else json.dumps(v)
                           for k, v in (payload or {}).items()}) if isinstance(payload, dict) \
            else ""
        url, payload = (f"{url}{'&' if '?' in url else '?'}{query}" if query else url), None
    try:
        response = safe_request(method, url, json=payload,
                                timeout=TOOL_TIMEOUT_SECONDS,
                                headers={"User-Agent": "agent-tool/1"})
    except SsrfBlocked as exc:
        return f"error: the tool's URL is not allowed ({exc})"
    except Exception as exc:  # timeouts, refused connections: tell the model, go on
        return f"error: the tool call failed ({type(exc).__name__})"
    text = response.text()[:MAX_ANSWER_CHARS]
    if response.status_code >= 400:
        return f"error: the tool answered HTTP {response.status_code}: {text}"
    try:
        return json.dumps(json.loads(text))[:MAX_ANSWER_CHARS]
    except ValueError:
        return text
