"""Secrets at rest: provider keys, signing keys, webhook secrets.

MultiFernet with the keys from ALBEDO_ENCRYPTION_KEYS (newest first: the first encrypts, all
decrypt). The plaintext is bound to its tenant and purpose: the encrypted blob carries
``tenant_id|purpose|secret`` under Fernet's authentication, and decryption refuses a blob
whose tenant or purpose differs from the row it is read for, so a ciphertext copied into
another tenant's row does not decrypt.
"""

from __future__ import annotations

import uuid

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class SecretError(ValueError):
    """The blob does not decrypt, or does not belong to this tenant and purpose."""


def _box(keys: tuple[str, ...] | None = None) -> MultiFernet:
    keys = keys or current_app.extensions["albedo.settings"].encryption_keys
    return MultiFernet([Fernet(k.encode()) for k in keys])


def _header(tenant_id: uuid.UUID | None, purpose: str) -> bytes:
    if "|" in purpose:
        raise ValueError("purpose cannot contain '|'")
    return f"{tenant_id or 'platform'}|{purpose}|".encode()


def encrypt(secret: bytes | str, tenant_id: uuid.UUID | None, purpose: str) -> str:
    data = secret.encode() if isinstance(secret, str) else secret
    return _box().encrypt(_header(tenant_id, purpose) + data).decode("ascii")


def decrypt(blob: str, tenant_id: uuid.UUID | None, purpose: str) -> bytes:
    try:
        plain = _box().decrypt(blob.encode("ascii"))
    except (InvalidToken, ValueError, UnicodeEncodeError):
        raise SecretError("the secret does not decrypt with the configured keys") from None
    header = _header(tenant_id, purpose)
    if not plain.startswith(header):
        raise SecretError("the secret belongs to another tenant or purpose")
    return plain[len(header):]


def decrypt_text(blob: str, tenant_id: uuid.UUID | None, purpose: str) -> str:
    return decrypt(blob, tenant_id, purpose).decode()


def rotate(blob: str) -> str:
    """Re-encrypt under the newest key (``flask albedo rotate-encryption``)."""
    try:
        return _box().rotate(blob.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise SecretError("the secret does not decrypt with the configured keys") from None
