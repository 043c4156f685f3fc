"""Offline license files: a signed document an agent keeps to run without a network.

A license file (``POST /api/v1/licenses/{id}/file``) says what a license was when it was
issued: its state, entitlements, issue time and how long the file may be trusted offline
(``ttl``). A machine file (asked for at activation) says the same for one machine. The
format, documented with vectors in docs/license-keys.md::

    -----BEGIN LICENSE FILE-----            (or MACHINE FILE)
    base64( {"alg": …, "enc": …, "kid": …, "sig": …} ), in lines of 64
    -----END LICENSE FILE-----

    enc  = base64(document JSON)                         alg "base64+ed25519"
         | base64(nonce 12 B || AES-256-GCM ciphertext || tag 16 B)
                                                        alg "aes-256-gcm+ed25519"
    sig  = base64(Ed25519("license/" || enc))             ("machine/" for a machine file)

The encryption key is SHA-256 of ``"LICENSE-FILE-V1" 0x00`` and the license key in the
form its hash is taken in (``keyformat.presented_key_sha256``), plus ``0x00`` and the
fingerprint for a machine file: only the key's holder (on that machine) reads it. The
signature covers ``enc`` as sent, so tampering is seen before anything is decrypted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import textwrap
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app import clock
from app.licensing import keyformat, signing
from app.licensing.models import License, Machine
from app.licensing.snapshot import entitlements_of

CONTEXT = b"LICENSE-FILE-V1\x00"
DEFAULT_TTL = 30 * 86400
PLAIN = "base64+ed25519"
ENCRYPTED = "aes-256-gcm+ed25519"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encryption_key(license_key: str, fingerprint: str | None = None) -> bytes:
    normalised = license_key.translate(keyformat._HASH_FORM).encode()
    material = CONTEXT + normalised
    if fingerprint is not None:
        material += b"\x00" + fingerprint.encode()
    return hashlib.sha256(material).digest()


def document(license_: License, machine: Machine | None, ttl: int,
             now: datetime | None = None) -> dict[str, Any]:
    """What the file says: the license (and machine) now, its issue time and TTL."""
    issued = (now or clock.now()).replace(microsecond=0)
    return {
        "type": "machine" if machine is not None else "license",
        "license": {
            "id": str(license_.id), "key_sha256": keyformat.presented_key_sha256(license_.key),
            "status": license_.status, "product": license_.product.code,
            "policy": str(license_.policy_id),
            "expires_at": license_.expires_at.isoformat() if license_.expires_at else None,
            "max_machines": license_.policy.max_machines if license_.policy.floating else 1,
            "max_cores": license_.policy.max_cores,
        },
        "entitlements": list(entitlements_of(license_)),
        "machine": ({"id": str(machine.id), "fingerprint": machine.fingerprint,
                     "name": machine.name, "cores": machine.cores}
                    if machine is not None else None),
        "issued": issued.isoformat(),
        "expiry": (issued + timedelta(seconds=ttl)).isoformat(),
        "ttl": ttl,
    }


def seal(doc: dict[str, Any], key: signing.LoadedKey, encrypt_with: bytes | None = None,
         nonce: bytes | None = None) -> str:
    """The armored, signed (and optionally encrypted) file for ``doc``."""
    assert key.private is not None
    plain = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    if encrypt_with is None:
        alg, enc = PLAIN, _b64(plain)
    else:
        nonce = nonce or os.urandom(12)
        alg, enc = ENCRYPTED, _b64(nonce + AESGCM(encrypt_with).encrypt(nonce, plain, None))
    kind = doc["type"]
    sig = _b64(key.private.sign(f"{kind}/{enc}".encode()))
    envelope = json.dumps({"alg": alg, "enc": enc, "kid": key.kid, "sig": sig},
                          separators=(",", ":"), sort_keys=True).encode()
    label = f"{kind.upper()} FILE"
    body = "\n".join(textwrap.wrap(_b64(envelope), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def license_file(license_: License, ttl: int, encrypt: bool) -> dict[str, Any]:
    doc = document(license_, None, ttl)
    text = seal(doc, signing.signer(), encryption_key(license_.key) if encrypt else None)
    return {"certificate": text, "issued_at": doc["issued"], "expires_at": doc["expiry"],
            "ttl": ttl}


def machine_file(license_: License, machine: Machine, ttl: int, encrypt: bool) -> str:
    doc = document(license_, machine, ttl)
    return seal(doc, signing.signer(),
                encryption_key(license_.key, machine.fingerprint) if encrypt else None)
