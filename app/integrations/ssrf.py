"""Outbound HTTP to user-given URLs (webhooks, agent tools), behind an SSRF guard.

A user must not be able to make the platform call its own loopback, the private network or
a cloud metadata service. The guard:

* resolves the hostname and refuses the request unless *every* address is global
  (no loopback, private, link-local such as 169.254.169.254, CGNAT, multicast, reserved,
  unspecified, and IPv4-mapped forms of those);
* connects to the address it checked (the URL's host is replaced by the IP, with the Host
  header and TLS SNI kept), so a DNS answer that changes in between cannot slip through;
* follows redirects itself, checking every hop the same way;
* times out, and reads at most ``max_bytes`` of the answer.

``ALBEDO_SSRF_ALLOW`` (comma-separated ``ip:port``) lets exactly those addresses through: the
tests use it to reach their local receiver. Production leaves it empty.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx
from flask import current_app, has_app_context

REDIRECTS = (301, 302, 303, 307, 308)


class SsrfBlocked(ValueError):
    """The URL points somewhere the platform must not call."""


@dataclass(frozen=True)
class GuardedResponse:
    status_code: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    elapsed_ms: int
    truncated: bool

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _allowlist() -> frozenset[str]:
    if not has_app_context():
        return frozenset()
    raw = current_app.extensions["albedo.settings"].extra.get("ALBEDO_SSRF_ALLOW", "")
    return frozenset(item.strip() for item in raw.split(",") if item.strip())


def _blocked_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _blocked_reason(ip.ipv4_mapped)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_private:
        return "private network"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "not a public address"
    return None


def resolve_checked(url: str) -> tuple[str, str, int]:
    """(hostname, checked ip, port) for ``url``, or SsrfBlocked."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SsrfBlocked("only http and https URLs are allowed")
    if not parts.hostname:
        raise SsrfBlocked("the URL has no host")
    if parts.username or parts.password:
        raise SsrfBlocked("credentials in URLs are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise SsrfBlocked("the URL's port is invalid") from None
    host = parts.hostname
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise SsrfBlocked(f"{host} does not resolve") from None
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        raise SsrfBlocked(f"{host} does not resolve")
    allow = _allowlist()
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if f"{ip}:{port}" in allow or f"[{ip}]:{port}" in allow:
            continue
        reason = _blocked_reason(ip)
        if reason:
            raise SsrfBlocked(f"{host} resolves to {ip}, a {reason} address")
    return host, addresses[0], port


def _pinned(url: str, ip: str) -> str:
    parts = urlsplit(url)
    netloc_ip = f"[{ip}]" if ":" in ip else ip
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{netloc_ip}{port}").geturl()


def safe_request(method: str, url: str, *, json: object = None, content: bytes | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float = 15.0,
                 max_redirects: int = 3, max_bytes: int = 65_536) -> GuardedResponse:
    """Send one request (and its redirects) through the guard."""
    started = time.monotonic()
    deadline = started + timeout
    with httpx.Client(follow_redirects=False, trust_env=False) as client:
        for _ in range(max_redirects + 1):
            host, ip, _port = resolve_checked(url)
            request_headers = dict(headers or {})
            parts = urlsplit(url)
            request_headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
            remaining = max(deadline - time.monotonic(), 0.1)
            request = client.build_request(
                method, _pinned(url, ip), json=json, content=content, headers=request_headers,
                timeout=httpx.Timeout(remaining),
                extensions={"sni_hostname": host} if parts.scheme == "https" else {})
            response = client.send(request, stream=True)
            try:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    if response.status_code == 303:
                        method, json, content = "GET", None, None
                    continue
                body = b""
                truncated = False
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        body, truncated = body[:max_bytes], True
                        break
                return GuardedResponse(response.status_code, dict(response.headers), body, url,
                                       int((time.monotonic() - started) * 1000), truncated)
            finally:
                response.close()
    raise SsrfBlocked(f"more than {max_redirects} redirects")


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that checks each request's address after DNS, as ``safe_request``
    does, for long-lived clients whose host someone else chose (a reseller's provider base
    URL, given to the openai SDK): a name that resolved publicly when it was saved and
    privately now (DNS rebinding) is refused at every connection, redirects included. The
    connection goes to the checked address; Host and TLS still name the host."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host, ip, _port = resolve_checked(str(request.url))
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = request.url.copy_with(host=ip)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
