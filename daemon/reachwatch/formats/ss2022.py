"""Shadowsocks 2022 edition (SIP022), TCP: PSK handling, subkeys and the request/response headers.

Methods: ``2022-blake3-aes-128-gcm`` and ``2022-blake3-aes-256-gcm`` (the two SIP022 makes mandatory).
The optional ChaCha variants and UDP are not implemented.

- PSK: the user's base64 key, exactly 16 or 32 bytes (no ``EVP_BytesToKey``: SIP022 section 2.1);
- session subkey = ``BLAKE3.derive_key("shadowsocks 2022 session subkey", psk + salt)``, one per
  direction, the salt as long as the key;
- AES-GCM, nonce = 12-byte little-endian counter incremented after every seal/open (as in AEAD 2017,
  so the chunks are framed by ``formats.shadowsocks.AeadDirection``).

Request stream (ours)::

    salt | AEAD(type=0, timestamp:u64be, len:u16be) | AEAD(ATYP addr port, padlen:u16be, padding, payload)
         | then AEAD(len:u16be) | AEAD(payload) ...

Response stream (the server's)::

    salt | AEAD(type=1, timestamp:u64be, request_salt, len:u16be) | AEAD(payload) | AEAD(len) | ...

Checks on the response: type 1, the echoed request salt is ours (so a reflection or a replayed answer
fails), and the timestamp. SIP022 says a message more than 30 s off "MUST be treated as replay"; so a
server whose clock differs from ours by more than that is refused with :class:`ClockSkew`, which
carries the measured skew. The server applies the same rule to us and answers a skewed client with
silence - on the wire the same as a censor dropping the session. The probe turns both into a distinct,
documented outcome (see ``probes/shadowsocks.py``); neither is blocking evidence.

The TCP stream that drives this over a socket is ``vpn/ss2022.py``.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import struct
from dataclasses import dataclass

from blake3 import blake3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reachwatch.formats.errors import StreamCorrupt
from reachwatch.formats.shadowsocks import AeadDirection

TAG = 16
MAX_PAYLOAD = 0xFFFF
MAX_PADDING = 900
MAX_SKEW_S = 30  # SIP022 3.1.3: "over 30 seconds of time difference MUST be treated as replay"
SUBKEY_CONTEXT = "shadowsocks 2022 session subkey"
TYPE_CLIENT = 0
TYPE_SERVER = 1


@dataclass(frozen=True)
class Method2022:
    key_len: int  # the salt has the same length


METHODS_2022: dict[str, Method2022] = {
    "2022-blake3-aes-128-gcm": Method2022(16),
    "2022-blake3-aes-256-gcm": Method2022(32),
}


# not a StreamCorrupt: nothing is corrupt, the clocks disagree, and the probe reports it apart
class ClockSkew(Exception):
    """The server's timestamp is more than 30 s from ours: SIP022 says treat it as a replay."""

    def __init__(self, skew_s: float) -> None:
        super().__init__(f"server clock differs from ours by {skew_s:+.0f} s (limit {MAX_SKEW_S} s)")
        self.skew_s = skew_s


def decode_psk(method: str, text: str) -> bytes:
    """The raw PSK from its base64 text; ``ValueError`` (never quoting the key) if it does not fit."""
    want = METHODS_2022[method].key_len
    cleaned = text.strip()
    try:
        key = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        try:  # some tools emit the URL-safe alphabet
            key = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            raise ValueError(f"{method} needs a base64 key of {want} bytes; this is not base64") from None
    if len(key) != want:
        raise ValueError(f"{method} needs a base64 key of {want} bytes, got {len(key)}")
    return key


def session_subkey(psk: bytes, salt: bytes) -> bytes:
    """The per-direction AES key: BLAKE3 in key-derivation mode over ``psk + salt``."""
    return blake3(psk + salt, derive_key_context=SUBKEY_CONTEXT).digest(len(psk))


def direction(psk: bytes, salt: bytes) -> AeadDirection:
    """The AEAD of one direction, keyed by that direction's salt."""
    return AeadDirection(AESGCM(session_subkey(psk, salt)))


@dataclass
class RequestHead:
    """The first bytes of our request stream and what stays to be sent after them."""

    salt: bytes
    sealer: AeadDirection  # our direction's AEAD, two seals in: the later chunks continue its counter
    wire: bytes  # salt + both header chunks (the variable one carrying the start of the payload)
    rest: bytes  # payload that did not fit in the variable header


def request_head(psk: bytes, address: bytes, data: bytes, now: float) -> RequestHead:
    """Salt and the two header chunks carrying as much of ``data`` as fits (``address`` is ATYP addr port)."""
    salt = os.urandom(len(psk))
    sealer = direction(psk, salt)
    # random padding even with a payload: the first packet's size then does not reveal the request
    padding = os.urandom(1 + secrets.randbelow(MAX_PADDING))
    room = MAX_PAYLOAD - len(address) - 2 - len(padding)
    first, rest = data[:room], data[room:]
    variable = address + struct.pack(">H", len(padding)) + padding + first
    fixed = struct.pack(">BQH", TYPE_CLIENT, int(now), len(variable))
    return RequestHead(salt, sealer, salt + sealer.seal(fixed) + sealer.seal(variable), rest)


def response_header_size(key_len: int) -> int:
    """Bytes of salt plus the sealed fixed-length response header: the first read of a response."""
    return key_len + 1 + 8 + key_len + 2 + TAG


@dataclass
class ResponseHead:
    opener: AeadDirection  # the server's direction's AEAD, one open in
    first_len: int  # plaintext length of the first payload chunk
    skew_s: float  # the server's clock minus ours


def open_response_header(psk: bytes, request_salt: bytes, wire: bytes, now: float) -> ResponseHead:
    """Check the response header (``response_header_size`` bytes) against our request.

    ``StreamCorrupt`` for a forged, reflected or replayed header; ``ClockSkew`` for one more than
    ``MAX_SKEW_S`` from ``now``.
    """
    key_len = len(psk)
    salt, sealed = wire[:key_len], wire[key_len:]
    opener = direction(psk, salt)
    header = opener.open(sealed)
    kind, stamp = struct.unpack_from(">BQ", header)
    echoed = header[9 : 9 + key_len]
    (length,) = struct.unpack_from(">H", header, 9 + key_len)
    if kind != TYPE_SERVER:
        # our own request reflected back would be type 0 (and fails the tag check long before)
        raise StreamCorrupt(f"response header type {kind}, expected {TYPE_SERVER}")
    if not secrets.compare_digest(echoed, request_salt):
        raise StreamCorrupt("response is for another request (echoed salt differs): a replay")
    skew_s = float(stamp) - now
    if abs(skew_s) > MAX_SKEW_S:
        raise ClockSkew(skew_s)
    return ResponseHead(opener, length, skew_s)
