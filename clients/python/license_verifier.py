"""Offline license-key, signed-answer and license-file verification for embedded agents.

Standalone: needs only the ``cryptography`` package (and the standard library). Copy this
one file into your program. See README.md next to it and docs/license-keys.md.

    from license_verifier import verify_key, verify_response, read_license_file

    # the JWK set from https://<reseller domain>/.well-known/license-keys.json
    jwks = json.load(open("license-keys.json"))
    key = verify_key("ACME-0G8…", jwks)            # raises KeyInvalid, or returns VerifiedKey
    key.expired                                     # True once past key.expires_at
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["AnswerInvalid", "KeyInvalid", "LicenseFileInvalid", "VerifiedKey",
           "presented_key_sha256", "read_license_file", "verify_key", "verify_response"]

FORMAT_VERSION = 1
CONTEXT = b"LICENSE-KEY-V1\x00"
FILE_CONTEXT = b"LICENSE-FILE-V1\x00"
PAYLOAD_LEN = 29
SIGNATURE_LEN = 64
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(ALPHABET)} | {"I": 1, "L": 1, "O": 0}
ENCODED_LEN = 149
MAX_TEXT = 256
PREFIX = re.compile(r"^[A-Z][A-Z0-9]{1,11}$")
_SEPARATORS = re.compile(r"[- ]")
_HASH_FORM = {**{ord(c): None for c in " -\t\r\n"},
              **{ord(c): ord(c.upper()) for c in "abcdefghijklmnopqrstuvwxyz"}}
MAX_SKEW = timedelta(minutes=5)
SIGNATURE_HEADERS = ("license-signature", "albedo-signature")  # the second: older servers
_ARMOR = re.compile(r"-----BEGIN (LICENSE|MACHINE) FILE-----\s*(.*?)\s*"
                    r"-----END \1 FILE-----", re.S)


class KeyInvalid(ValueError):
    """The key is malformed, signed by an unknown key, or its signature does not verify.

    ``code`` is MALFORMED, UNKNOWN_KEY or BAD_SIGNATURE.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class AnswerInvalid(ValueError):
    """A validation answer failed its signature, digest, date, nonce or binding check."""


class LicenseFileInvalid(ValueError):
    """A license or machine file that cannot be trusted.

    ``code`` is MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, KEY_REQUIRED, DECRYPTION_FAILED,
    KEY_MISMATCH, FINGERPRINT_REQUIRED, FINGERPRINT_MISMATCH or EXPIRED.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class VerifiedKey:
    version: int
    kid: str
    license_id: uuid.UUID
    expires_at: datetime | None
    expired: bool  # now > expires_at: at expires_at exactly the key is still current


def _public_keys(jwks: dict) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "kid" in jwk:
            raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
            keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def _unknown_kid(jwks: dict, kid: str) -> str:
    """A kid not published: BAD_SIGNATURE if the reseller retired it, else UNKNOWN_KEY."""
    return "BAD_SIGNATURE" if kid in jwks.get("retired_kids", []) else "UNKNOWN_KEY"


def _b32decode(text: str) -> bytes:
    value = 0
    for char in text:
        if char not in _DECODE:
            raise KeyInvalid("MALFORMED", f"character {char!r} is not in the key alphabet")
        value = (value << 5) | _DECODE[char]
    nbytes = PAYLOAD_LEN + SIGNATURE_LEN
    pad = len(text) * 5 - nbytes * 8  # one bit: it must be zero
    if value & ((1 << pad) - 1):
        raise KeyInvalid("MALFORMED", "the key's padding bit is not zero")
    return (value >> pad).to_bytes(nbytes, "big")


def _parse(key: str) -> tuple[int, bytes, bytes, int, bytes, bytes]:
    if not isinstance(key, str) or len(key) > MAX_TEXT:
        raise KeyInvalid("MALFORMED", f"a key is a string of at most {MAX_TEXT} characters")
    parts = _SEPARATORS.split(key.strip().upper(), maxsplit=1)
    if len(parts) != 2 or not PREFIX.match(parts[0]):
        raise KeyInvalid("MALFORMED", "a key starts with a prefix of 2-12 letters or digits "
                                      "(a letter first) and a hyphen")
    body = _SEPARATORS.sub("", parts[1])
    if len(body) != ENCODED_LEN:
        raise KeyInvalid("MALFORMED", "the key has the wrong length")
    raw = _b32decode(body)
    payload, signature = raw[:PAYLOAD_LEN], raw[PAYLOAD_LEN:]
    version, kid_bytes, license_bytes, expires = struct.unpack(">B8s16sI", payload)
    if version != FORMAT_VERSION:
        raise KeyInvalid("MALFORMED", f"key format version {version} is not supported")
    return version, kid_bytes, license_bytes, expires, payload, signature


def verify_key(key: str, jwks: dict, now: datetime | None = None) -> VerifiedKey:
    """Check a key's signature against the reseller's published keys (no network)."""
    version, kid_bytes, license_bytes, expires, payload, signature = _parse(key)
    kid = kid_bytes.hex()
    public = _public_keys(jwks).get(kid)
    if public is None:
        code = _unknown_kid(jwks, kid)
        raise KeyInvalid(code, f"kid {kid} is retired" if code == "BAD_SIGNATURE"
                         else f"no published key has kid {kid}")
    try:
        public.verify(signature, CONTEXT + payload)
    except InvalidSignature:
        raise KeyInvalid("BAD_SIGNATURE", "the key's signature does not verify") from None
    expires_at = datetime.fromtimestamp(expires, UTC) if expires else None
    now = now or datetime.now(UTC)
    return VerifiedKey(version, kid, uuid.UUID(bytes=license_bytes), expires_at,
                       expired=expires_at is not None and now > expires_at)


def presented_key_sha256(key: str) -> str:
    """What an answer's ``scope.key_sha256`` must be for this key: SHA-256 (hex) of the key
    without hyphens, spaces, tabs and line breaks, ASCII letters upper-cased."""
    return hashlib.sha256(key.translate(_HASH_FORM).encode("utf-8")).hexdigest()


def _signature_params(header: str) -> dict[str, str]:
    params = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        params[name] = value.strip('"')
    return params


def _license_id_of(key: str) -> str | None:
    try:
        return str(uuid.UUID(bytes=_parse(key)[2]))
    except KeyInvalid:
        return None


def _check_binding(answer: dict, request: dict) -> None:
    """The answer is about this request: same key, same scope (and the license the key
    names)."""
    if "error" in answer:
        return  # an error echoes the nonce only (checked by the caller)
    scope = answer.get("scope")
    if not isinstance(scope, dict):
        raise AnswerInvalid("the answer does not say what it validated")
    key = request.get("key")
    if not isinstance(key, str) or scope.get("key_sha256") != presented_key_sha256(key):
        raise AnswerInvalid("the answer is about another license key")
    for name in ("fingerprint", "product", "policy", "entitlements"):
        if scope.get(name) != request.get(name):
            raise AnswerInvalid(f"the answer is about another {name}")
    license_ = answer.get("license")
    if license_ is not None and license_.get("id") != _license_id_of(key):
        raise AnswerInvalid("the answer is about another license")


def verify_response(*, method: str, path: str, host: str, headers: dict[str, str],
                    body: bytes, jwks: dict, request: dict | None = None,
                    nonce: str | None = None, now: datetime | None = None) -> dict:
    """Check a signed validation answer; returns the parsed JSON body.

    ``request`` is the JSON body the client sent (key, fingerprint, product, policy,
    entitlements, nonce). Checks, in order: the signature (Ed25519, keyid from the JWK set)
    over the request line, host, Date and Digest; that Digest is the SHA-256 of ``body``;
    that Date (and the body's ``ts``) is within five minutes of ``now``; that the body
    echoes the request's nonce (``null`` when it sent none); and, for a validation answer,
    that ``scope`` names this key (its hash), fingerprint, product, policy and entitlements
    and ``license.id`` is the key's. Any failure raises AnswerInvalid.

    Without ``request``, only ``nonce`` is compared (when given): the answer is then not
    bound to the key, which an interceptor holding another valid key can exploit.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    signature_header = next((lower[h] for h in SIGNATURE_HEADERS if h in lower), None)
    if signature_header is None:
        raise AnswerInvalid("the answer has no License-Signature header")
    try:
        date, digest = lower["date"], lower["digest"]
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
    if request is not None:
        nonce = request.get("nonce")
    if (request is not None or nonce is not None) and answer.get("nonce") != nonce:
        raise AnswerInvalid("the answer does not echo this request's nonce (replay?)")
    if request is not None:
        ts = answer.get("ts")
        try:
            answered = datetime.fromisoformat(ts)
        except (TypeError, ValueError):
            raise AnswerInvalid("the answer has no time") from None
        if abs(now - answered) > MAX_SKEW:
            raise AnswerInvalid("the answer's time is older or newer than five minutes")
        _check_binding(answer, request)
    return answer


# --- license and machine files --------------------------------------------------------

def file_key(license_key: str, fingerprint: str | None = None) -> bytes:
    """The AES-256-GCM key of an encrypted license (or machine) file."""
    material = FILE_CONTEXT + license_key.translate(_HASH_FORM).encode("utf-8")
    if fingerprint is not None:
        material += b"\x00" + fingerprint.encode("utf-8")
    return hashlib.sha256(material).digest()


def read_license_file(text: str, jwks: dict, *, key: str | None = None,
                      fingerprint: str | None = None, now: datetime | None = None) -> dict:
    """Check a license file (or machine file) and return its document.

    ``key`` (the license key) is needed for an encrypted file, and is checked against the
    file when given; ``fingerprint`` is required for a machine file and must be its
    machine's. The file is refused once ``now`` is past its ``expiry`` (issue time + TTL).
    """
    match = _ARMOR.search(text or "")
    if match is None:
        raise LicenseFileInvalid("MALFORMED", "not a license or machine file")
    kind = match.group(1).lower()
    try:
        envelope = json.loads(base64.b64decode("".join(match.group(2).split()),
                                               validate=True))
        alg, enc, kid, sig = (envelope[k] for k in ("alg", "enc", "kid", "sig"))
        signature = base64.b64decode(sig, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise LicenseFileInvalid("MALFORMED", "the file's envelope cannot be read") from None
    public = _public_keys(jwks).get(kid)
    if public is None:
        raise LicenseFileInvalid(_unknown_kid(jwks, kid), f"kid {kid} is not published")
    try:
        public.verify(signature, f"{kind}/{enc}".encode())
    except InvalidSignature:
        raise LicenseFileInvalid("BAD_SIGNATURE", "the file's signature does not verify") \
            from None
    try:
        raw = base64.b64decode(enc, validate=True)
    except (ValueError, binascii.Error):
        raise LicenseFileInvalid("MALFORMED", "the file's content cannot be read") from None
    if alg == "aes-256-gcm+ed25519":
        if key is None or (kind == "machine" and fingerprint is None):
            raise LicenseFileInvalid("KEY_REQUIRED", "the file is encrypted: give the license "
                                     "key (and, for a machine file, the fingerprint)")
        try:
            raw = AESGCM(file_key(key, fingerprint if kind == "machine" else None)).decrypt(
                raw[:12], raw[12:], None)
        except (InvalidTag, ValueError):
            raise LicenseFileInvalid("DECRYPTION_FAILED", "this key does not open the file") \
                from None
    elif alg != "base64+ed25519":
        raise LicenseFileInvalid("MALFORMED", f"unknown algorithm {alg!r}")
    try:
        doc = json.loads(raw)
        issued = datetime.fromisoformat(doc["issued"])
        expiry = datetime.fromisoformat(doc["expiry"])
    except (ValueError, KeyError, TypeError):
        raise LicenseFileInvalid("MALFORMED", "the file's document cannot be read") from None
    if doc.get("type") != kind:
        raise LicenseFileInvalid("MALFORMED", "the document is not of the file's type")
    if key is not None and doc["license"].get("key_sha256") != presented_key_sha256(key):
        raise LicenseFileInvalid("KEY_MISMATCH", "the file is for another license key")
    if kind == "machine":
        if fingerprint is None:
            raise LicenseFileInvalid("FINGERPRINT_REQUIRED", "a machine file needs the "
                                     "fingerprint of the machine reading it")
        if (doc.get("machine") or {}).get("fingerprint") != fingerprint:
            raise LicenseFileInvalid("FINGERPRINT_MISMATCH", "the file is for another machine")
    now = now or datetime.now(UTC)
    if now > expiry or issued - MAX_SKEW > now:
        raise LicenseFileInvalid("EXPIRED", "the file is past its TTL (check out a new one)")
    return doc
