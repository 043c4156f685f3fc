"""Offline license-key and signed-answer verification for embedded agents.

Standalone: needs only the ``cryptography`` package (and the standard library). Copy this
one file into your program. See README.md next to it and docs/license-keys.md.

    from license_verifier import verify_key, verify_response

    # the JWK set from https://<reseller domain>/.well-known/albedo/license-keys.json
    jwks = json.load(open("license-keys.json"))
    key = verify_key("ACME-0G8…", jwks)            # raises KeyInvalid, or returns VerifiedKey
    key.expired                                     # True once past key.expires_at
"""

from __future__ import annotations

import base64
import hashlib
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["AnswerInvalid", "KeyInvalid", "VerifiedKey", "verify_key", "verify_response"]

FORMAT_VERSION = 1
CONTEXT = b"LICENSE-KEY-V1\x00"
PAYLOAD_LEN = 29
SIGNATURE_LEN = 64
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(ALPHABET)} | {"I": 1, "L": 1, "O": 0}
ENCODED_LEN = 149
MAX_SKEW = timedelta(minutes=5)


class KeyInvalid(ValueError):
    """The key is malformed, signed by an unknown key, or its signature does not verify.

    ``code`` is MALFORMED, UNKNOWN_KEY or BAD_SIGNATURE.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class AnswerInvalid(ValueError):
    """A validation answer failed its signature, digest, date or nonce check."""


@dataclass(frozen=True)
class VerifiedKey:
    version: int
    kid: str
    license_id: uuid.UUID
    expires_at: datetime | None
    expired: bool


def _public_keys(jwks: dict) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "kid" in jwk:
            raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
            keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def _b32decode(text: str) -> bytes:
    value = 0
    for char in text:
        if char not in _DECODE:
            raise KeyInvalid("MALFORMED", f"character {char!r} is not in the key alphabet")
        value = (value << 5) | _DECODE[char]
    nbytes = PAYLOAD_LEN + SIGNATURE_LEN
    pad = len(text) * 5 - nbytes * 8
    if value & ((1 << pad) - 1):
        raise KeyInvalid("MALFORMED", "the key has the wrong length")
    return (value >> pad).to_bytes(nbytes, "big")


def verify_key(key: str, jwks: dict, now: datetime | None = None) -> VerifiedKey:
    """Check a key's signature against the reseller's published keys (no network)."""
    cleaned = key.strip().upper().replace(" ", "")
    prefix, sep, body = cleaned.partition("-")
    body = body.replace("-", "")
    if not prefix or not sep or len(body) != ENCODED_LEN:
        raise KeyInvalid("MALFORMED", "not a license key")
    raw = _b32decode(body)
    payload, signature = raw[:PAYLOAD_LEN], raw[PAYLOAD_LEN:]
    version, kid_bytes, license_bytes, expires = struct.unpack(">B8s16sI", payload)
    if version != FORMAT_VERSION:
        raise KeyInvalid("MALFORMED", f"key format version {version} is not supported")
    kid = kid_bytes.hex()
    public = _public_keys(jwks).get(kid)
    if public is None:
        raise KeyInvalid("UNKNOWN_KEY", f"no published key has kid {kid}")
    try:
        public.verify(signature, CONTEXT + payload)
    except InvalidSignature:
        raise KeyInvalid("BAD_SIGNATURE", "the key's signature does not verify") from None
    expires_at = datetime.fromtimestamp(expires, UTC) if expires else None
    now = now or datetime.now(UTC)
    return VerifiedKey(version, kid, uuid.UUID(bytes=license_bytes), expires_at,
                       expired=expires_at is not None and now > expires_at)


def _signature_params(header: str) -> dict[str, str]:
    params = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        params[name] = value.strip('"')
    return params


def verify_response(*, method: str, path: str, host: str, headers: dict[str, str],
                    body: bytes, jwks: dict, nonce: str | None = None,
                    now: datetime | None = None) -> dict:
    """Check a signed validation answer; returns the parsed JSON body.

    Checks, in order: the signature (Ed25519, keyid from the JWK set) over the request line,
    host, Date and Digest; that Digest is the SHA-256 of ``body``; that Date is within five
    minutes of ``now``; and that the body echoes ``nonce``. Any failure raises AnswerInvalid.
    """
    import json

    lower = {k.lower(): v for k, v in headers.items()}
    try:
        date, digest, signature_header = (lower["date"], lower["digest"],
                                          lower["albedo-signature"])
    except KeyError as missing:
        raise AnswerInvalid(f"the answer has no {missing.args[0]} header") from None
    params = _signature_params(signature_header)
    if params.get("algorithm") != "ed25519":
        raise AnswerInvalid("unsupported signature algorithm")
    public = _public_keys(jwks).get(params.get("keyid", ""))
    if public is None:
        raise AnswerInvalid("the answer is signed by an unknown key")
    signed = (f"(request-target): {method.lower()} {path}\nhost: {host.lower()}\n"
              f"date: {date}\ndigest: {digest}").encode()
    try:
        public.verify(base64.b64decode(params.get("signature", "")), signed)
    except (InvalidSignature, ValueError):
        raise AnswerInvalid("the answer's signature does not verify") from None
    expected = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    if digest != expected:
        raise AnswerInvalid("the body does not match its Digest")
    now = now or datetime.now(UTC)
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise AnswerInvalid("the Date header is not a date") from None
    if abs(now - sent) > MAX_SKEW:
        raise AnswerInvalid("the answer is older or newer than five minutes (replay?)")
    answer = json.loads(body)
    if nonce is not None and answer.get("nonce") != nonce:
        raise AnswerInvalid("the answer does not echo this request's nonce (replay?)")
    return answer
