"""The license key: bytes, signature and text. Pure functions, no Flask and no database.

Layout (format version 1), documented with test vectors in docs/license-keys.md::

    PREFIX "-" base32crockford( payload || signature )

    payload (29 bytes) = version:u8 (=1) | kid:8 bytes | license_id:16 bytes (UUID)
                         | expires:u32 big-endian (Unix seconds, 0 = never)
    signature (64 bytes) = Ed25519( CONTEXT || payload )

The prefix is the reseller's branding and is *not* signed, so a reseller may change its
prefix without invalidating keys already sold; the kid names the signing key instead. The
context string keeps these signatures from ever being valid for another message type
(the response signatures use a different construction). Crockford base32 is case-insensitive
and has no I, L, O or U, so a key read aloud or retyped survives; decoding maps I/L→1, O→0
and ignores hyphens and spaces. 93 bytes → 149 characters (one padding bit, which must be
zero), plus a prefix of 2-12 characters and the separator: at most 162 characters as issued.
A key may be grouped with hyphens or spaces when it is written down; the text accepted is at
most ``MAX_TEXT`` characters. The prefix ends at the first hyphen or space.

clients/python/license_verifier.py implements the same decoding independently, so that an
embedded agent can verify a key with only ``cryptography``; the published vectors keep the
two in agreement.
"""

from __future__ import annotations

import hashlib
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

FORMAT_VERSION = 1
CONTEXT = b"LICENSE-KEY-V1\x00"
KID_BYTES = 8
PAYLOAD_LEN = 1 + KID_BYTES + 16 + 4
SIGNATURE_LEN = 64
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_DECODE.update({"I": 1, "L": 1, "O": 0})
_ENCODED_LEN = -(-(PAYLOAD_LEN + SIGNATURE_LEN) * 8 // 5)
MAX_TEXT = 256  # the issued 162 characters with room for grouping hyphens or spaces
PREFIX = re.compile(r"^[A-Z][A-Z0-9]{1,11}$")  # the tenants' rule (tenants.service)
_SEPARATORS = re.compile(r"[- ]")
# For the presented key's hash: separators and ASCII whitespace out, ASCII letters upper.
_HASH_FORM = {**{ord(c): None for c in " -\t\r\n"},
              **{ord(c): ord(c.upper()) for c in "abcdefghijklmnopqrstuvwxyz"}}


class MalformedKey(ValueError):
    """The text is not a license key of a known format."""


@dataclass(frozen=True)
class KeyPayload:
    version: int
    kid: str  # hex of the 8 key-id bytes, as published in the JWKS
    license_id: uuid.UUID
    expires_at: datetime | None

    def to_bytes(self) -> bytes:
        expires = int(self.expires_at.timestamp()) if self.expires_at else 0
        return struct.pack(">B8s16sI", self.version, bytes.fromhex(self.kid),
                           self.license_id.bytes, expires)


@dataclass(frozen=True)
class ParsedKey:
    prefix: str
    payload: KeyPayload
    signed_bytes: bytes  # CONTEXT || payload, what the signature covers
    signature: bytes


def b32encode(data: bytes) -> str:
    bits = int.from_bytes(data, "big")
    length = -(-len(data) * 8 // 5)
    bits <<= length * 5 - len(data) * 8  # pad on the right to whole 5-bit groups
    return "".join(_ALPHABET[(bits >> (5 * (length - 1 - i))) & 31] for i in range(length))


def b32decode(text: str, nbytes: int) -> bytes:
    value = 0
    for char in text:
        digit = _DECODE.get(char)
        if digit is None:
            raise MalformedKey(f"character {char!r} is not in the key alphabet")
        value = (value << 5) | digit
    pad = len(text) * 5 - nbytes * 8
    if pad < 0 or pad >= 5 or value & ((1 << pad) - 1):
        raise MalformedKey("the key has the wrong length")
    return (value >> pad).to_bytes(nbytes, "big")


def encode(prefix: str, payload: KeyPayload, signature: bytes) -> str:
    return f"{prefix}-{b32encode(payload.to_bytes() + signature)}"


def signing_input(payload: KeyPayload) -> bytes:
    return CONTEXT + payload.to_bytes()


def presented_key_sha256(text: object) -> str:
    """The hash a validation answer echoes for the key it was asked about (hex SHA-256 of
    the text without hyphens, spaces, tabs or line breaks, ASCII letters upper-cased): the
    same for every way of writing one key, different for another key."""
    normalised = text.translate(_HASH_FORM) if isinstance(text, str) else ""
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()


def parse(text: str) -> ParsedKey:
    """Split and decode a key; raises MalformedKey. The signature is NOT checked here."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise MalformedKey(f"a license key is a string of at most {MAX_TEXT} characters")
    cleaned = text.strip().upper()
    parts = _SEPARATORS.split(cleaned, maxsplit=1)
    if len(parts) != 2 or not PREFIX.match(parts[0]):
        raise MalformedKey("a license key starts with its prefix (2-12 letters or digits, "
                           "a letter first) and a hyphen")
    prefix, body = parts
    body = _SEPARATORS.sub("", body)
    if len(body) != _ENCODED_LEN:
        raise MalformedKey("the key has the wrong length")
    raw = b32decode(body, PAYLOAD_LEN + SIGNATURE_LEN)
    payload_bytes, signature = raw[:PAYLOAD_LEN], raw[PAYLOAD_LEN:]
    version, kid, license_bytes, expires = struct.unpack(">B8s16sI", payload_bytes)
    if version != FORMAT_VERSION:
        raise MalformedKey(f"key format version {version} is not supported")
    payload = KeyPayload(
        version=version, kid=kid.hex(), license_id=uuid.UUID(bytes=license_bytes),
        expires_at=datetime.fromtimestamp(expires, UTC) if expires else None)
    return ParsedKey(prefix=prefix, payload=payload, signed_bytes=CONTEXT + payload_bytes,
                     signature=signature)
