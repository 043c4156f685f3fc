"""Each reseller's Ed25519 signing keys: creation, rotation, retirement, JWKS, signatures.

The newest unretired key signs new license keys and every validation answer; every
unretired key verifies, so rotation never breaks a key already sold. Private keys live
encrypted (secrets_box, bound to the tenant and the kid): a blob copied into another
tenant's row does not decrypt.

The validation hot path must not decrypt or query on every request, so each process keeps
a short-lived cache of a tenant's loaded keys (``KEY_CACHE_TTL``); rotation and retirement
clear the local cache at once and other processes within the TTL.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from email.utils import format_datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from flask import current_app
from sqlalchemy import select

from app import clock, secrets_box
from app.errors import ApiError
from app.extensions import db
from app.licensing import keyformat
from app.licensing.models import SigningKey
from tenants.context import current_id

KEY_CACHE_TTL = 10.0
SIGNATURE_ALGORITHM = "ed25519"
SIGNED_HEADERS = "(request-target) host date digest"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _purpose(kid: str) -> str:
    return f"license-signing-key:{kid}"


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    public: Ed25519PublicKey
    public_b64: str
    private: Ed25519PrivateKey | None  # only for the key that signs


@dataclass(frozen=True)
class KeySet:
    """A tenant's unretired keys, newest first."""

    keys: tuple[LoadedKey, ...]
    # Kids this tenant used to sign with: a key naming one fails as BAD_SIGNATURE, not as
    # NOT_FOUND (answered without a query, like every other step before the license).
    retired_kids: frozenset[str] = frozenset()

    @property
    def signer(self) -> LoadedKey | None:
        return self.keys[0] if self.keys else None

    def find(self, kid: str) -> LoadedKey | None:
        return next((k for k in self.keys if k.kid == kid), None)


class _Cache:
    def __init__(self) -> None:
        self._entries: dict[uuid.UUID, tuple[float, KeySet]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: uuid.UUID) -> KeySet | None:
        entry = self._entries.get(tenant_id)
        if entry and entry[0] > time.monotonic():
            return entry[1]
        return None

    def put(self, tenant_id: uuid.UUID, keyset: KeySet) -> None:
        with self._lock:
            self._entries[tenant_id] = (time.monotonic() + KEY_CACHE_TTL, keyset)

    def forget(self, tenant_id: uuid.UUID) -> None:
        with self._lock:
            self._entries.pop(tenant_id, None)


def _cache() -> _Cache:
    return current_app.extensions.setdefault("albedo.license_keys", _Cache())


def _tenant_id() -> uuid.UUID:
    tenant_id = current_id()
    if tenant_id is None:
        raise RuntimeError("signing keys belong to a tenant: activate one first")
    return tenant_id


def create_key() -> SigningKey:
    """A new signing key for the tenant in context; it signs from now on."""
    tenant_id = _tenant_id()
    private = Ed25519PrivateKey.generate()
    kid = secrets.token_hex(keyformat.KID_BYTES)
    raw_private = private.private_bytes(serialization.Encoding.Raw,
                                        serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    row = SigningKey(
        kid=kid, public_key=_b64url(raw_public),
        private_key_encrypted=secrets_box.encrypt(raw_private, tenant_id, _purpose(kid)))
    db.session.add(row)
    db.session.flush()
    _cache().forget(tenant_id)
    return row


def rotate() -> SigningKey:
    """Add a new key that signs from now on; older keys keep verifying until retired."""
    from app.auth import audit

    row = create_key()
    audit.record("signing_key_rotated", **audit.acting(), target_type="signing_key",
                 target_id=row.kid)
    return row


def retire(kid: str) -> SigningKey:
    """Stop a key from verifying (e.g. after a leak); keys it signed then fail validation."""
    row = db.session.scalars(select(SigningKey).where(SigningKey.kid == kid)).first()
    if row is None:
        raise ApiError(404, "signing_key_not_found", "No signing key has this kid.")
    active = keys_newest_first()
    if not row.retired and len(active) == 1:
        raise ApiError(409, "last_signing_key",
                       "Rotate first: the last active key cannot be retired.")
    if row.retired_at is None:
        from app.auth import audit

        row.retired_at = clock.now()
        audit.record("signing_key_retired", **audit.acting(), target_type="signing_key",
                     target_id=row.kid)
    _cache().forget(_tenant_id())
    return row


def keys_newest_first(include_retired: bool = False) -> list[SigningKey]:
    stmt = select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid)
    if not include_retired:
        stmt = stmt.where(SigningKey.retired_at.is_(None))
    return list(db.session.scalars(stmt))


def ensure_key() -> SigningKey:
    """The signing key, created on first use so a new reseller needs no setup step."""
    existing = keys_newest_first()
    return existing[0] if existing else create_key()


def _load(rows: list[SigningKey], tenant_id: uuid.UUID) -> KeySet:
    loaded = []
    for index, row in enumerate(rows):
        raw_public = base64.urlsafe_b64decode(row.public_key + "=" * (-len(row.public_key) % 4))
        private = None
        if index == 0:
            raw = secrets_box.decrypt(row.private_key_encrypted, tenant_id, _purpose(row.kid))
            private = Ed25519PrivateKey.from_private_bytes(raw)
        loaded.append(LoadedKey(row.kid, Ed25519PublicKey.from_public_bytes(raw_public),
                                row.public_key, private))
    return KeySet(tuple(loaded))


def keyset() -> KeySet:
    """The tenant's unretired keys, loaded (cached for KEY_CACHE_TTL seconds)."""
    tenant_id = _tenant_id()
    cached = _cache().get(tenant_id)
    if cached is not None:
        return cached
    rows = keys_newest_first(include_retired=True)
    loaded = _load([row for row in rows if not row.retired], tenant_id)
    loaded = KeySet(loaded.keys, frozenset(row.kid for row in rows if row.retired))
    _cache().put(tenant_id, loaded)
    return loaded


def signer() -> LoadedKey:
    loaded = keyset()
    if loaded.signer is None:
        ensure_key()
        db.session.commit()
        loaded = keyset()
    assert loaded.signer is not None
    return loaded.signer


def jwks() -> dict:
    """The public JWK set of the tenant in context (RFC 8037: OKP / Ed25519)."""
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": row.public_key, "kid": row.kid,
                      "use": "sig", "alg": "EdDSA"}
                     for row in keys_newest_first()]}


# --- license keys -------------------------------------------------------------------------

def sign_license_key(prefix: str, payload: keyformat.KeyPayload, key: LoadedKey) -> str:
    assert key.private is not None and payload.kid == key.kid
    signature = key.private.sign(keyformat.signing_input(payload))
    return keyformat.encode(prefix, payload, signature)


def verify_parsed(parsed: keyformat.ParsedKey, key: LoadedKey) -> bool:
    try:
        key.public.verify(parsed.signature, parsed.signed_bytes)
    except InvalidSignature:
        return False
    return True


# --- signed HTTP answers ------------------------------------------------------------------

def http_date() -> str:
    return format_datetime(clock.now(), usegmt=True)


def digest_header(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def signing_string(method: str, path: str, host: str, date: str, digest: str) -> bytes:
    """What an answer's signature covers: the request line it answers, host, date, body."""
    return (f"(request-target): {method.lower()} {path}\nhost: {host.lower()}\n"
            f"date: {date}\ndigest: {digest}").encode()


def sign_response(method: str, path: str, host: str, body: bytes) -> dict[str, str]:
    """The Date, Digest and Albedo-Signature headers for an answer with this body."""
    key = signer()
    assert key.private is not None
    date = http_date()
    digest = digest_header(body)
    signature = key.private.sign(signing_string(method, path, host, date, digest))
    value = (f'keyid="{key.kid}",algorithm="{SIGNATURE_ALGORITHM}",'
             f'headers="{SIGNED_HEADERS}",signature="{base64.b64encode(signature).decode()}"')
    return {"Date": date, "Digest": digest, "Albedo-Signature": value}
