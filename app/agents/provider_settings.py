"""A reseller's own AI provider: save, replace or clear its key and base URL, and describe it.

The key is stored encrypted (provider.set_tenant_provider) and never shown again: a reader
learns only that one is set and its last four characters. Every change is audited, without
the key.

Where a base URL may point is decided here:

* always ``http`` or ``https``, with a host, and no credentials, query or fragment;
* in production, the host must resolve to public addresses only (the SSRF guard of
  app/integrations/ssrf.py: no loopback, private, link-local/metadata, CGNAT…): the workers
  would otherwise send requests, with a bearer key, into the platform's own network on a
  reseller's behalf. An operator who runs a provider on its private network lets exactly
  that ``ip:port`` through with ``ALBEDO_SSRF_ALLOW``;
* in development and testing any address is accepted, so a local OpenAI-compatible server
  (Ollama on ``http://localhost:11434/v1``, vLLM…) keeps working.

The check runs when the URL is saved, and again at every connection the workers make to it
(``provider._http_client``: the SSRF guard's transport): a name that resolves publicly when
saved and privately later (DNS rebinding) fails the execution with
``provider_address_blocked`` before anything is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from app import secrets_box
from app.agents.config import agents_config
from app.agents.models import ProviderSetting
from app.agents.provider import PURPOSE, set_tenant_provider
from app.auth import audit
from app.errors import ApiError
from app.extensions import db
from app.integrations.ssrf import SsrfBlocked, resolve_checked
from tenants.context import current_id

# Printable ASCII without spaces: it travels in an Authorization header.
KEY = re.compile(r"^[\x21-\x7e]{8,500}$")
MAX_URL_CHARS = 500


@dataclass(frozen=True)
class ProviderStatus:
    """What a reseller may know about its provider settings: never the key itself."""

    configured: bool
    key_last4: str | None
    base_url: str | None
    updated_at: datetime | None
    # Without an own key, do executions still run (on the operator's provider)?
    platform_provider: bool


def _row() -> ProviderSetting | None:
    return db.session.scalars(select(ProviderSetting)).first()


def _stored_key(row: ProviderSetting | None) -> str | None:
    if row is None or not row.api_key_encrypted:
        return None
    return secrets_box.decrypt_text(row.api_key_encrypted, current_id(), PURPOSE)


def describe() -> ProviderStatus:
    row = _row()
    config = agents_config()
    platform = bool(config.openai_api_key or config.openai_base_url)
    if row is None or not row.api_key_encrypted:
        return ProviderStatus(False, None, None, None, platform)
    try:
        last4 = _stored_key(row)[-4:]
    except secrets_box.SecretError:  # encrypted under a key since retired: still "set"
        last4 = None
    return ProviderStatus(True, last4, row.base_url, row.updated_at, platform)


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "validation_failed", message, {"fields": {field: [message]}})


def check_base_url(url: str | None) -> str | None:
    """The normalised base URL (None: the platform's), or a 422 that says what is wrong."""
    url = (url or "").strip().rstrip("/")
    if not url:
        return None
    if len(url) > MAX_URL_CHARS:
        raise _invalid("base_url", f"The base URL is at most {MAX_URL_CHARS} characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("base_url", "The base URL is an http:// or https:// address, such as "
                                   "https://api.openai.com/v1.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise _invalid("base_url", "The base URL carries no credentials, query or fragment; "
                                   "the key goes in its own field.")
    try:
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        raise _invalid("base_url", "The base URL's port is invalid.") from None
    if current_app.extensions["albedo.settings"].is_production:
        try:
            resolve_checked(url)
        except SsrfBlocked as blocked:
            raise _invalid("base_url", f"This address cannot be used: {blocked}.") from None
    return url


def _audit(**details: object) -> None:
    # Whether a key is set, and the base URL: never the key, nor part of it.
    audit.record("agent_provider_changed", **audit.acting(), target_type="tenant",
                 target_id=current_id(), **details)


def save(api_key: str | None, base_url: str | None) -> ProviderStatus:
    """Set the key and base URL; without ``api_key`` the stored key is kept (URL change)."""
    api_key = (api_key or "").strip()
    url = check_base_url(base_url)
    if api_key:
        if not KEY.match(api_key):
            raise _invalid("api_key", "The key is 8 to 500 printable characters, no spaces.")
    else:
        try:
            api_key = _stored_key(_row()) or ""
        except secrets_box.SecretError:
            api_key = ""
        if not api_key:
            raise _invalid("api_key", "Enter your provider's API key.")
    set_tenant_provider(api_key, url)
    db.session.flush()  # updated_at, for the answer
    _audit(key_set=True, base_url=url)
    return describe()


def clear() -> None:
    """Forget the key and base URL: executions go back to the platform's provider."""
    row = _row()
    if row is None or not (row.api_key_encrypted or row.base_url):
        return
    set_tenant_provider(None, None)
    _audit(key_set=False, base_url=None)

