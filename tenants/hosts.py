"""Host header normalisation: one spelling per hostname before any lookup."""

from __future__ import annotations

import re

import idna

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_host(raw: str | None) -> str | None:
    """Lowercase, without port or trailing dot, IDNA-encoded; None when not a valid hostname."""
    if not raw:
        return None
    host = raw.strip().lower()
    if host.startswith("["):  # [::1]:5000
        end = host.find("]")
        return host[: end + 1] if end > 0 else None
    if host.count(":") == 1:
        host, _, port = host.partition(":")
        if port and not port.isdigit():
            return None
    elif ":" in host:
        return None
    host = host.rstrip(".")
    if not host or len(host) > 253:
        return None
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            return None
    if not all(_LABEL.match(label) for label in host.split(".")):
        return None
    return host
