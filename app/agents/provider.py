"""Which OpenAI-compatible provider an execution calls, and with which key.

A tenant's own key (encrypted at rest with app.secrets_box, bound to the tenant) wins over the
platform's ``OPENAI_API_KEY``/``OPENAI_BASE_URL``. With neither, executing is refused with a
message that says how to configure one; nothing pretends to answer.

A worker process runs many executions, so the openai client (its connection pool, TLS context)
is built once per tenant and reused (:func:`client_for`); building one per run cost more than
the rest of the pipeline.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from flask import current_app
from sqlalchemy import select

from app import secrets_box
from app.agents.config import agents_config
from app.agents.models import ProviderSetting
from app.errors import ApiError
from app.extensions import db
from tenants.context import current_id

PURPOSE = "agents.provider_key"
# The openai client insists on a key; local servers (Ollama, vLLM) ignore it.
KEYLESS = "not-needed"


@dataclass(frozen=True)
class Provider:
    api_key: str
    base_url: str | None
    # The tenant this provider was resolved for: its cached client is that tenant's alone.
    tenant_id: uuid.UUID | None = None
    # A reseller's own base URL in production: every connection is checked after DNS.
    guarded: bool = False

    def __repr__(self) -> str:  # never print the key
        return f"Provider(base_url={self.base_url!r}, tenant_id={self.tenant_id})"

    @property
    def fingerprint(self) -> str:
        """Names the key without holding it (a changed key is a different client)."""
        return hashlib.sha256(self.api_key.encode()).hexdigest()


def set_tenant_provider(api_key: str | None, base_url: str | None = None) -> ProviderSetting:
    """Save (or clear, with ``api_key=None``) the current tenant's own provider key."""
    row = db.session.scalars(select(ProviderSetting)).first()
    if row is None:
        row = ProviderSetting()
        db.session.add(row)
    row.api_key_encrypted = (secrets_box.encrypt(api_key, current_id(), PURPOSE)
                             if api_key else None)
    row.base_url = (base_url or "").rstrip("/") or None
    return row


def tenant_has_own_key() -> bool:
    row = db.session.scalars(select(ProviderSetting)).first()
    return bool(row and row.api_key_encrypted)


def resolve_provider() -> Provider:
    row = db.session.scalars(select(ProviderSetting)).first()
    config = agents_config()
    if row is not None and row.api_key_encrypted:
        key = secrets_box.decrypt_text(row.api_key_encrypted, current_id(), PURPOSE)
        guarded = bool(row.base_url) and current_app.extensions["albedo.settings"].is_production
        return Provider(key, row.base_url or config.openai_base_url, current_id(), guarded)
    if config.openai_api_key:
        return Provider(config.openai_api_key, config.openai_base_url, current_id())
    if config.openai_base_url:
        return Provider(KEYLESS, config.openai_base_url, current_id())
    raise ApiError(
        503, "provider_not_configured",
        "No AI provider is configured. The platform operator sets OPENAI_API_KEY (and "
        "OPENAI_BASE_URL for an OpenAI-compatible server such as Ollama or vLLM), or the "
        "reseller saves its own provider key in the agent settings.")


@dataclass
class _Entry:
    base_url: str | None
    fingerprint: str
    client: openai.OpenAI
    # What is built on the client (the engine's chat models, one per agent version).
    derived: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict)


class _Clients:
    """One openai client per tenant, for the (base URL, key) it was built with.

    Keyed by tenant, so a client (which carries its key) is never handed to another tenant
    even when two tenants use the same server; a tenant whose base URL or key changed gets a
    new client, and the old one and all built on it are dropped (its connections close when
    it is collected). Bounded, least recently used first out. A forked child starts empty:
    sockets are not shared across processes.
    """

    def __init__(self, size: int = 256, derived_size: int = 64) -> None:
        self.size, self.derived_size = size, derived_size
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._entries: OrderedDict[uuid.UUID | None, _Entry] = OrderedDict()

    def _entry(self, provider: Provider) -> _Entry:
        if self._pid != os.getpid():
            self._entries.clear()
            self._pid = os.getpid()
        entry = self._entries.get(provider.tenant_id)
        if entry is None or (entry.base_url, entry.fingerprint) != (provider.base_url,
                                                                     provider.fingerprint):
            # Retries are the engine's (before the first token only); the timeout is per call.
            client = openai.OpenAI(api_key=provider.api_key, base_url=provider.base_url,
                                   max_retries=0, http_client=_http_client(provider))
            entry = _Entry(provider.base_url, provider.fingerprint, client)
            self._entries[provider.tenant_id] = entry
        self._entries.move_to_end(provider.tenant_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry

    def client(self, provider: Provider) -> openai.OpenAI:
        with self._lock:
            return self._entry(provider).client

    def derived(self, provider: Provider, key: Hashable,
                build: Callable[[openai.OpenAI], Any]) -> Any:
        with self._lock:
            entry = self._entry(provider)
            if key not in entry.derived:
                entry.derived[key] = build(entry.client)
            entry.derived.move_to_end(key)
            while len(entry.derived) > self.derived_size:
                entry.derived.popitem(last=False)
            return entry.derived[key]


_clients = _Clients()


def _http_client(provider: Provider) -> httpx.Client | None:
    if not provider.guarded:
        return None  # the SDK's own default client
    from app.integrations.ssrf import GuardedTransport

    return openai.DefaultHttpxClient(transport=GuardedTransport())


def client_for(provider: Provider) -> openai.OpenAI:
    """The long-lived openai client for ``provider`` in this process (see :class:`_Clients`)."""
    return _clients.client(provider)


def built_on_client(provider: Provider, key: Hashable,
                    build: Callable[[openai.OpenAI], Any]) -> Any:
    """``build(client)`` for ``provider``'s client, kept with it under ``key`` (and dropped
    with it): for objects that are costly to make and never change for that key."""
    return _clients.derived(provider, key, build)
