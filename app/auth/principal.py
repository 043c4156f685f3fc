"""Who is calling the API: a signed-in user (JWT) or an API key, inside one tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

SCOPES = (
    "agents:read", "agents:write", "agents:execute",
    "licenses:read", "licenses:write",
    "webhooks:manage",
    "billing:read", "billing:write",
)
# A user's token carries every scope; what the user may touch is then decided by role and
# ownership. API keys carry only the scopes they were given.
ALL_SCOPES = frozenset(SCOPES)


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" | "api_key"
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    scopes: frozenset[str]
    api_key_id: uuid.UUID | None = None
    token_id: str | None = None
    # The user's email when read with the principal (``/me`` answers it without a query).
    email: str | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_reseller(self) -> bool:
        return self.role == "RESELLER"

    @property
    def is_admin(self) -> bool:
        return self.role == "ADMIN"

    def owns(self, owner_id: uuid.UUID | None) -> bool:
        """Object rule: a USER acts on its own objects; RESELLER and ADMIN on the tenant's."""
        return self.role != "USER" or owner_id == self.user_id
