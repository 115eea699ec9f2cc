"""Shadowsocks 2022 edition (SIP022), TCP: PSK handling, subkeys and the encrypted stream.

Methods: ``2022-blake3-aes-128-gcm`` and ``2022-blake3-aes-256-gcm`` (the two SIP022 makes mandatory).
The optional ChaCha variants and UDP are not implemented.

- PSK: the user's base64 key, exactly 16 or 32 bytes (no ``EVP_BytesToKey``: SIP022 section 2.1);
- session subkey = ``BLAKE3.derive_key("shadowsocks 2022 session subkey", psk + salt)``, one per
  direction, the salt as long as the key;
- AES-GCM, nonce = 12-byte little-endian counter incremented after every seal/open (as in AEAD 2017).

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

Bounded reads: the response header is ``salt + 27/43 + 16`` bytes, every later read at most
``0xFFFF + 16``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import secrets
import struct
import time
from dataclasses import dataclass

from blake3 import blake3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reachwatch.net.dial import close_quietly
from reachwatch.net.socks import encode_address
from reachwatch.vpn.canary import StreamCorrupt
from reachwatch.vpn.shadowsocks import AeadDirection

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


class Shadowsocks2022Stream:
    """A TCP connection to a SIP022 server carrying one stream to ``host:port``.

    The first ``send`` puts salt, both request headers and the first payload (inside the variable
    header, with random padding) in ONE write, as SIP022 section 3.1.4 requires. ``skew_s`` is the
    server's clock minus ours once its response header has been read.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        method: str,
        psk: bytes,
        host: str,
        port: int,
    ) -> None:
        self._key_len = METHODS_2022[method].key_len
        if len(psk) != self._key_len:
            raise ValueError(f"{method} needs a {self._key_len}-byte key")
        self._psk = psk
        self._reader = reader
        self._writer = writer
        self._address = encode_address(host, port)
        self._enc: AeadDirection | None = None
        self._salt = b""
        self._dec: AeadDirection | None = None
        self._next_len = 0  # plaintext length of the next payload chunk, from the previous length field
        self._plain = b""
        self._eof = False
        self.skew_s: float | None = None

    def _request_head(self, data: bytes) -> tuple[bytes, bytes]:
        """Salt and the two header chunks carrying as much of ``data`` as fits; returns (wire, rest)."""
        self._salt = os.urandom(self._key_len)
        self._enc = AeadDirection(AESGCM(session_subkey(self._psk, self._salt)))
        # random padding even with a payload: the first packet's size then does not reveal the request
        padding = os.urandom(1 + secrets.randbelow(MAX_PADDING))
        room = MAX_PAYLOAD - len(self._address) - 2 - len(padding)
        first, rest = data[:room], data[room:]
        variable = self._address + struct.pack(">H", len(padding)) + padding + first
        fixed = struct.pack(">BQH", TYPE_CLIENT, int(time.time()), len(variable))
        return self._salt + self._enc.seal(fixed) + self._enc.seal(variable), rest

    async def send(self, data: bytes) -> None:
        out = bytearray()
        if self._enc is None:
            head, data = self._request_head(data)
            out += head
        assert self._enc is not None
        for offset in range(0, len(data), MAX_PAYLOAD):
            piece = data[offset : offset + MAX_PAYLOAD]
            out += self._enc.seal(struct.pack(">H", len(piece)))
            out += self._enc.seal(piece)
        self._writer.write(bytes(out))
        await self._writer.drain()

    async def _read_upto(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer only at EOF (``b""`` if EOF came first)."""
        buf = await self._reader.read(n)
        if buf and len(buf) < n:
            try:
                buf += await self._reader.readexactly(n - len(buf))
            except asyncio.IncompleteReadError as exc:
                buf += exc.partial
        return buf

    async def _read_response_header(self) -> bool:
        """Salt and fixed header; False at EOF before any byte. Sets the first payload length."""
        header_len = 1 + 8 + self._key_len + 2
        size = self._key_len + header_len + TAG
        wire = await self._read_upto(size)
        if not wire:
            return False
        if len(wire) < size:
            raise asyncio.IncompleteReadError(wire, size)
        salt, sealed = wire[: self._key_len], wire[self._key_len :]
        self._dec = AeadDirection(AESGCM(session_subkey(self._psk, salt)))
        header = self._dec.open(sealed)
        kind, stamp = struct.unpack_from(">BQ", header)
        echoed = header[9 : 9 + self._key_len]
        (length,) = struct.unpack_from(">H", header, 9 + self._key_len)
        if kind != TYPE_SERVER:
            # our own request reflected back would be type 0 (and fails the tag check long before)
            raise StreamCorrupt(f"response header type {kind}, expected {TYPE_SERVER}")
        if not secrets.compare_digest(echoed, self._salt):
            raise StreamCorrupt("response is for another request (echoed salt differs): a replay")
        self.skew_s = float(stamp) - time.time()
        if abs(self.skew_s) > MAX_SKEW_S:
            raise ClockSkew(self.skew_s)
        self._next_len = length
        return True

    async def _read_chunk(self) -> bytes | None:
        """One decrypted payload chunk; ``None`` at a clean end of stream (EOF between chunks)."""
        assert self._enc is not None, "send before recv: the request opens the stream"
        if self._dec is None:
            if not await self._read_response_header():
                return None
        else:
            head = await self._read_upto(2 + TAG)
            if not head:
                return None
            if len(head) < 2 + TAG:
                raise asyncio.IncompleteReadError(head, 2 + TAG)
            assert self._dec is not None
            (self._next_len,) = struct.unpack(">H", self._dec.open(head))
        assert self._dec is not None
        return self._dec.open(await self._reader.readexactly(self._next_len + TAG))

    async def recv(self, max_bytes: int) -> bytes:
        while not self._plain and not self._eof:
            chunk = await self._read_chunk()
            if chunk is None:
                self._eof = True
            else:
                self._plain = chunk  # a zero-length chunk is legal: read on
        out, self._plain = self._plain[:max_bytes], self._plain[max_bytes:]
        return out

    async def close(self) -> None:
        await close_quietly(self._writer)
