"""Each reseller's Ed25519 signing keys: creation, rotation, retirement, JWKS, signatures.

The newest unretired key signs new license keys and every validation answer; every
unretired key verifies, so rotation never breaks a key already sold. Private keys live
encrypted (secrets_box, bound to the tenant and the kid): a blob copied into another
tenant's row does not decrypt.

The validation hot path must not decrypt or query on every request, so each process keeps
a tenant's loaded keys together with the tenant's generation counter (``freshness``) they
were read under. Creating, rotating or retiring a key bumps that counter at commit; the hot
path's Redis script compares it as it does for license snapshots, and everything else that
signs or publishes (issuing a license, the JWKS) asks Redis for the counter first. So a
rotation or retirement takes effect in every process at once (on the hot path: at its next
call to Redis, i.e. within ``ALBEDO_LICENSE_SYNC_SECONDS``). ``KEY_CACHE_MAX_AGE`` only
bounds the damage of a lost bump.

A tenant's first key is made with the tenant (``install``: a session hook), so its JWKS
is never empty.
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
from flask import current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app import clock, secrets_box
from app.errors import ApiError
from app.extensions import db
from app.licensing import keyformat
from app.licensing.models import SigningKey
from tenants.context import cross_tenant, current_id

KEY_CACHE_MAX_AGE = 30.0
SIGNATURE_ALGORITHM = "ed25519"
SIGNED_HEADERS = "(request-target) host date digest"
# The signature header. The neutral name is the documented one; the legacy name is what
# verifiers shipped before it read (see ``legacy_signature_header``).
SIGNATURE_HEADER = "License-Signature"
LEGACY_SIGNATURE_HEADER = "Albedo-Signature"


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
    # The tenant's generation counter when the rows were read ('' when Redis was away).
    generation: str = ""

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
            self._entries[tenant_id] = (time.monotonic() + KEY_CACHE_MAX_AGE, keyset)

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


def create_key(tenant_id: uuid.UUID | None = None) -> SigningKey:
    """A new signing key for the tenant in context (or ``tenant_id``); it signs from now on."""
    tenant_id = tenant_id or _tenant_id()
    private = Ed25519PrivateKey.generate()
    kid = secrets.token_hex(keyformat.KID_BYTES)
    raw_private = private.private_bytes(serialization.Encoding.Raw,
                                        serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
    row = SigningKey(
        kid=kid, public_key=_b64url(raw_public),
        private_key_encrypted=secrets_box.encrypt(raw_private, tenant_id, _purpose(kid)),
        tenant_id=tenant_id)
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


def _current_generation(tenant_id: uuid.UUID) -> str:
    """The tenant's generation counter now ('' when Redis cannot be asked)."""
    from app.licensing import freshness
    from app.redis import get_redis

    try:
        value = get_redis().get(freshness.tenant_key(tenant_id))
    except Exception:
        return ""
    return value.decode() if value is not None else "0"


def keyset(fresh: bool = False) -> KeySet:
    """The tenant's unretired keys, loaded and cached with the tenant's generation.

    The hot path takes the cached set as it is (its Redis script checks the generation and
    ``forget`` + a second call follow a change); ``fresh=True`` asks Redis first, for the
    callers that sign something new or publish keys.
    """
    tenant_id = _tenant_id()
    cached = _cache().get(tenant_id)
    generation = None
    if fresh and cached is not None:
        generation = _current_generation(tenant_id)
        if generation != cached.generation or not generation:
            cached = None
    if cached is not None:
        return cached
    if generation is None:
        generation = _current_generation(tenant_id)  # before the read: a later bump wins
    rows = keys_newest_first(include_retired=True)
    loaded = _load([row for row in rows if not row.retired], tenant_id)
    loaded = KeySet(loaded.keys, frozenset(row.kid for row in rows if row.retired), generation)
    if generation:
        _cache().put(tenant_id, loaded)
    return loaded


def forget_keyset(tenant_id: uuid.UUID) -> None:
    """Drop the cached keys of a tenant (the hot path learned its generation moved)."""
    _cache().forget(tenant_id)


def signer(fresh: bool = True) -> LoadedKey:
    """The key that signs now: asked of Redis first unless ``fresh=False`` (the hot path,
    whose keys were just confirmed or will be by its script)."""
    loaded = keyset(fresh=fresh)
    if loaded.signer is None:
        ensure_key()
        db.session.commit()
        loaded = keyset()
    assert loaded.signer is not None
    return loaded.signer


def jwks() -> dict:
    """The public JWK set of the tenant in context (RFC 8037: OKP / Ed25519).

    ``retired_kids`` (an extra member, allowed by RFC 7517) lists the kids this reseller
    retired, so an offline verifier answers BAD_SIGNATURE for what they signed, as the
    validation endpoint does, rather than UNKNOWN_KEY.
    """
    rows = keys_newest_first(include_retired=True)
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": row.public_key, "kid": row.kid,
                      "use": "sig", "alg": "EdDSA"}
                     for row in rows if not row.retired],
            "retired_kids": sorted(row.kid for row in rows if row.retired)}


def install() -> None:
    """Make every new tenant's first signing key in the transaction that creates it."""
    global _installed
    if _installed:
        return

    @event.listens_for(Session, "after_flush")
    def _note_new_tenants(session, flush_context):
        from tenants.models import Tenant

        new = [obj.id for obj in session.new if isinstance(obj, Tenant)]
        if new:
            session.info.setdefault(_NEW_TENANTS, []).extend(new)

    @event.listens_for(Session, "before_commit")
    def _first_keys(session):
        pending = session.info.pop(_NEW_TENANTS, None)
        if not pending or not has_app_context():
            return  # no app, no encryption keys: ensure_key makes it at first use
        # Written for a tenant that is not (yet) the one in context: name why.
        with cross_tenant("a new tenant's first license signing key"):
            for tenant_id in pending:
                create_key(tenant_id)
            session.flush()

    @event.listens_for(Session, "after_rollback")
    def _discard(session):
        session.info.pop(_NEW_TENANTS, None)

    _installed = True


_NEW_TENANTS = "albedo_new_tenants"
_installed = False


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


def legacy_signature_header() -> bool:
    """Whether answers also carry the legacy header (``ALBEDO_LICENSE_LEGACY_SIGNATURE``)."""
    return current_app.extensions["albedo.settings"].license_legacy_signature


def sign_response(method: str, path: str, host: str, body: bytes,
                  fresh: bool = False) -> dict[str, str]:
    """The Date, Digest and License-Signature headers for an answer with this body.

    Verifiers shipped before the neutral name read ``Albedo-Signature``; a copy under that
    name is sent too unless the operator turned it off (they cannot be updated by us, and
    an answer they cannot verify would lock their holders out).
    """
    key = signer(fresh=fresh)
    assert key.private is not None
    date = http_date()
    digest = digest_header(body)
    signature = key.private.sign(signing_string(method, path, host, date, digest))
    value = (f'keyid="{key.kid}",algorithm="{SIGNATURE_ALGORITHM}",'
             f'headers="{SIGNED_HEADERS}",signature="{base64.b64encode(signature).decode()}"')
    headers = {"Date": date, "Digest": digest, SIGNATURE_HEADER: value}
    if legacy_signature_header():
        headers[LEGACY_SIGNATURE_HEADER] = value
    return headers
