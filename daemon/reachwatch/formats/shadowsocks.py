"""Shadowsocks AEAD (the 2017 "AEAD ciphers" spec): methods, key derivation and chunk framing.

Supported methods: ``aes-128-gcm``, ``aes-256-gcm``, ``chacha20-ietf-poly1305``. The 2022 edition
(SIP022, ``2022-blake3-*``) derives its keys differently (``formats/ss2022.py``) but frames chunks the
same way, with the :class:`AeadDirection` here.

Wire format, per direction::

    salt (key length) | chunk | chunk | ...
    chunk = AEAD(len:u16be, <= 0x3FFF) + tag(16) | AEAD(payload) + tag(16)

- master key = ``EVP_BytesToKey(password)`` (OpenSSL's MD5 chain, no salt, one iteration);
- session subkey = ``HKDF-SHA1(master, salt, info="ss-subkey")``, one per direction (each side sends
  its own random salt);
- nonce = 12-byte little-endian counter, incremented after every seal/open (two per chunk).

The TCP stream that drives this over a socket is ``vpn/shadowsocks.py``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reachwatch.formats.errors import StreamCorrupt

TAG = 16
MAX_PAYLOAD = 0x3FFF
SUBKEY_INFO = b"ss-subkey"


@dataclass(frozen=True)
class Method:
    key_len: int
    salt_len: int
    aead: type[AESGCM] | type[ChaCha20Poly1305]


METHODS: dict[str, Method] = {
    "aes-128-gcm": Method(16, 16, AESGCM),
    "aes-256-gcm": Method(32, 32, AESGCM),
    "chacha20-ietf-poly1305": Method(32, 32, ChaCha20Poly1305),
}


def evp_bytes_to_key(password: bytes, key_len: int) -> bytes:
    """OpenSSL's EVP_BytesToKey with MD5, no salt, count 1: what every Shadowsocks client does."""
    out = b""
    prev = b""
    while len(out) < key_len:
        prev = hashlib.md5(prev + password, usedforsecurity=False).digest()
        out += prev
    return out[:key_len]


def session_subkey(master: bytes, salt: bytes) -> bytes:
    """The per-direction AEAD key: HKDF-SHA1 of the master key with that direction's salt."""
    # SHA-1 is what the AEAD spec fixes for the subkey; not our choice
    return HKDF(
        algorithm=SHA1(),  # noqa: S303
        length=len(master),
        salt=salt,
        info=SUBKEY_INFO,
    ).derive(master)


class AeadDirection:
    """One direction of a Shadowsocks stream: a session-subkey AEAD and its little-endian nonce counter.

    Shared by the 2017 AEAD and the 2022 editions (``formats.ss2022``); only the subkey derivation differs.
    """

    def __init__(self, aead: AESGCM | ChaCha20Poly1305) -> None:
        self._aead = aead
        self._counter = 0

    def _nonce(self) -> bytes:
        nonce = self._counter.to_bytes(12, "little")
        self._counter += 1
        return nonce

    def seal(self, data: bytes) -> bytes:
        return self._aead.encrypt(self._nonce(), data, None)

    def open(self, data: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._nonce(), data, None)
        except InvalidTag:
            raise StreamCorrupt("Shadowsocks AEAD tag did not verify (wrong key or tampering)") from None


def seal_chunks(direction: AeadDirection, data: bytes, max_payload: int = MAX_PAYLOAD) -> bytes:
    """``data`` as length/payload chunk pairs of at most ``max_payload`` bytes each (both editions)."""
    out = bytearray()
    for offset in range(0, len(data), max_payload):
        piece = data[offset : offset + max_payload]
        out += direction.seal(len(piece).to_bytes(2, "big"))
        out += direction.seal(piece)
    return bytes(out)
