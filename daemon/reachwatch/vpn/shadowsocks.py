"""Shadowsocks AEAD (the 2017 "AEAD ciphers" spec): key derivation and the encrypted TCP stream.

Supported methods: ``aes-128-gcm``, ``aes-256-gcm``, ``chacha20-ietf-poly1305``. The 2022 edition
(SIP022, ``2022-blake3-*``) is a different protocol (headers, timestamps, PSK) in ``vpn/ss2022.py``.

Wire format, per direction::

    salt (key length) | chunk | chunk | ...
    chunk = AEAD(len:u16be, <= 0x3FFF) + tag(16) | AEAD(payload) + tag(16)

- master key = ``EVP_BytesToKey(password)`` (OpenSSL's MD5 chain, no salt, one iteration);
- session subkey = ``HKDF-SHA1(master, salt, info="ss-subkey")``, one per direction (each side sends
  its own random salt);
- nonce = 12-byte little-endian counter, incremented after every seal/open (two per chunk).

The client's first payload starts with the target address (``ATYP addr port``, as in SOCKS5). The server
sends nothing until the target answers, and never answers a client without the key: silence or a close is
all a wrong key gets, by design (probe resistance).

Every read is bounded: a salt, a 18-byte length block, at most 0x3FFF + 16 bytes of payload.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reachwatch.net.dial import close_quietly
from reachwatch.net.socks import encode_address
from reachwatch.vpn.canary import StreamCorrupt

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

    Shared by the 2017 AEAD and the 2022 editions (``vpn.ss2022``); only the subkey derivation differs.
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


class ShadowsocksStream:
    """A TCP connection to a Shadowsocks server, carrying one stream to ``host:port`` through it.

    Nothing is sent until the first ``send``: the salt, the target address and the first payload go
    out in ONE write (SIP022 section 3.1.4 asks the same of 2022 clients), so the first packet looks
    like a normal client's and its length does not give the probe away.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        method: str,
        password: str,
        host: str,
        port: int,
    ) -> None:
        self._method = METHODS[method]
        self._master = evp_bytes_to_key(password.encode(), self._method.key_len)
        self._reader = reader
        self._writer = writer
        self._header: bytes | None = encode_address(host, port)
        self._enc: AeadDirection | None = None
        self._sent_salt = b""
        self._dec: AeadDirection | None = None
        self._plain = b""
        self._eof = False

    async def send(self, data: bytes) -> None:
        out = bytearray()
        if self._enc is None:
            salt = os.urandom(self._method.salt_len)
            self._sent_salt = salt
            self._enc = AeadDirection(self._method.aead(session_subkey(self._master, salt)))
            out += salt
        if self._header is not None:
            data = self._header + data
            self._header = None
        for offset in range(0, len(data), MAX_PAYLOAD):
            piece = data[offset : offset + MAX_PAYLOAD]
            out += self._enc.seal(len(piece).to_bytes(2, "big"))
            out += self._enc.seal(piece)
        self._writer.write(bytes(out))
        await self._writer.drain()

    async def _read_chunk(self) -> bytes:
        """One decrypted chunk; ``b""`` at a clean end of stream (EOF between chunks)."""
        if self._dec is None:
            salt = await self._reader.read(self._method.salt_len)
            if not salt:
                return b""
            if len(salt) < self._method.salt_len:
                salt += await self._reader.readexactly(self._method.salt_len - len(salt))
            if salt == self._sent_salt:
                # an echo service (or a replaying middlebox) sends our own bytes back; they decrypt
                # fine with our own key, so without this check a reflector would pass for a server
                raise StreamCorrupt("the server's salt is our own: a reflection, not a Shadowsocks server")
            self._dec = AeadDirection(self._method.aead(session_subkey(self._master, salt)))
        head = await self._reader.read(2 + TAG)
        if not head:
            return b""
        if len(head) < 2 + TAG:
            head += await self._reader.readexactly(2 + TAG - len(head))
        length = int.from_bytes(self._dec.open(head), "big") & MAX_PAYLOAD
        return self._dec.open(await self._reader.readexactly(length + TAG))

    async def recv(self, max_bytes: int) -> bytes:
        while not self._plain and not self._eof:
            chunk = await self._read_chunk()
            if not chunk:
                self._eof = True
            self._plain = chunk
        out, self._plain = self._plain[:max_bytes], self._plain[max_bytes:]
        return out

    async def close(self) -> None:
        await close_quietly(self._writer)
