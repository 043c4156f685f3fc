"""Which OpenAI-compatible provider an execution calls, and with which key.

A tenant's own key (encrypted at rest with app.secrets_box, bound to the tenant) wins over the
platform's ``OPENAI_API_KEY``/``OPENAI_BASE_URL``. With neither, executing is refused with a
message that says how to configure one; nothing pretends to answer.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def __repr__(self) -> str:  # never print the key
        return f"Provider(base_url={self.base_url!r})"


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
        return Provider(key, row.base_url or config.openai_base_url)
    if config.openai_api_key:
        return Provider(config.openai_api_key, config.openai_base_url)
    if config.openai_base_url:
        return Provider(KEYLESS, config.openai_base_url)
    raise ApiError(
        503, "provider_not_configured",
        "No AI provider is configured. The platform operator sets OPENAI_API_KEY (and "
        "OPENAI_BASE_URL for an OpenAI-compatible server such as Ollama or vLLM), or the "
        "reseller saves its own provider key in the agent settings.")
