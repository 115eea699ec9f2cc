"""A Shadowsocks 2022 (SIP022) TCP server for the tests, written from the spec text.

Why a test-side server: no Debian or PyPI package here ships a server that speaks the 2022 edition
(shadowsocks-libev and v2ray 4 predate it; shadowsocks-rust, sing-box and Xray are not packaged), and
the probe must not be tested against its own code. So this file is an independent reading of
``shadowsocks-org/docs/doc/sip022.md`` section 3.1: it imports nothing from ``reachwatch`` (only the
tests' generic ``tcp_server``) and uses the ``blake3`` and ``cryptography`` packages directly.

What it enforces, as SIP022 asks of servers:

- salt and fixed-length header taken in exactly ONE read call (3.1.4): a client that splits its first
  write is refused;
- header type 0, timestamp within ``max_skew`` (30 s) of the server's clock (3.1.3, 3.1.5), then the
  salt checked against every salt seen in the last 60 s (3.1.5): a replay is refused;
- padding at most 900 bytes, and padding or payload present (3.1.4);
- every refusal is silent: the server reads and discards until the client leaves, never writing and
  never closing first, so neither a byte count nor a FIN/RST timing tells a prober anything.

The response: random salt, header ``type 1 | timestamp | request salt | length`` sent together with
the first payload chunk, then length/payload chunks. ``clock_offset`` shifts the server's clock, to
test skew; ``rejections`` records why each refused connection was refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from blake3 import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.servers import tcp_server

KEY_BYTES = {"2022-blake3-aes-128-gcm": 16, "2022-blake3-aes-256-gcm": 32}
CONTEXT = "shadowsocks 2022 session subkey"
SALT_TTL = 60.0


class Refused(Exception):
    """Why a connection is refused (kept in ``Ss2022Server.rejections``)."""


class Crypter:
    """AES-GCM under a BLAKE3-derived subkey, with the little-endian 12-byte nonce counter."""

    def __init__(self, psk: bytes, salt: bytes) -> None:
        key = blake3(psk + salt, derive_key_context=CONTEXT).digest(len(psk))
        self.aead = AESGCM(key)
        self.n = 0

    def _next(self) -> bytes:
        nonce = struct.pack("<Q", self.n) + b"\0\0\0\0"
        self.n += 1
        return nonce

    def seal(self, plain: bytes) -> bytes:
        return self.aead.encrypt(self._next(), plain, None)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self.aead.decrypt(self._next(), sealed, None)
        except InvalidTag:
            raise Refused("auth") from None


class Ss2022Server:
    def __init__(self, method: str, psk: bytes, *, clock_offset: float = 0.0, max_skew: float = 30.0) -> None:
        self.size = KEY_BYTES[method]
        assert len(psk) == self.size
        self.psk = psk
        self.clock_offset = clock_offset
        self.max_skew = max_skew
        self.salts: dict[bytes, float] = {}
        self.rejections: list[str] = []
        self.accepted = 0

    def now(self) -> float:
        return time.time() + self.clock_offset

    def _remember(self, salt: bytes) -> None:
        cutoff = time.monotonic() - SALT_TTL
        self.salts = {s: t for s, t in self.salts.items() if t > cutoff}
        if salt in self.salts:
            raise Refused("replay")
        self.salts[salt] = time.monotonic()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[Crypter, bytes, str, int, bytes]:
        want = self.size + 11 + 16
        first = await reader.read(want)  # exactly one read call for salt + fixed header
        if len(first) < want:
            raise Refused("short")
        salt = first[: self.size]
        dec = Crypter(self.psk, salt)
        kind, stamp, length = struct.unpack(">BQH", dec.open(first[self.size :]))
        if kind != 0:
            raise Refused("type")
        if abs(stamp - self.now()) > self.max_skew:
            raise Refused("clock")
        self._remember(salt)
        var = dec.open(await reader.readexactly(length + 16))
        atyp, pos = var[0], 1
        if atyp == 1:
            host, pos = str(ipaddress.IPv4Address(var[pos : pos + 4])), pos + 4
        elif atyp == 4:
            host, pos = str(ipaddress.IPv6Address(var[pos : pos + 16])), pos + 16
        elif atyp == 3:
            n = var[pos]
            host, pos = var[pos + 1 : pos + 1 + n].decode(), pos + 1 + n
        else:
            raise Refused("atyp")
        (port, padding) = struct.unpack_from(">HH", var, pos)
        pos += 4 + padding
        if padding > 900 or pos > len(var):
            raise Refused("padding")
        payload = var[pos:]
        if not payload and not padding:
            raise Refused("empty")
        return dec, salt, host, port, payload

    async def _drain(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while await reader.read(65536):
                pass

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                dec, req_salt, host, port, payload = await self._request(reader)
            except Refused as why:
                self.rejections.append(str(why))
                await self._drain(reader)
                return
            except (asyncio.IncompleteReadError, struct.error, IndexError, UnicodeDecodeError):
                self.rejections.append("malformed")
                await self._drain(reader)
                return
            # tests only ever relay to loopback: refuse anything else outright
            if host not in ("127.0.0.1", "::1", "localhost"):
                self.rejections.append("target")
                await self._drain(reader)
                return
            self.accepted += 1
            try:
                up_r, up_w = await asyncio.open_connection(host, port)
            except OSError:
                return  # like a real server: close, the client learns nothing more
            try:
                up_w.write(payload)
                await up_w.drain()
                await asyncio.gather(
                    self._upstream(reader, dec, up_w), self._downstream(up_r, writer, req_salt)
                )
            finally:
                up_w.close()
        finally:
            writer.close()

    async def _upstream(self, reader: asyncio.StreamReader, dec: Crypter, up_w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(2 + 16)
                (length,) = struct.unpack(">H", dec.open(head))
                up_w.write(dec.open(await reader.readexactly(length + 16)))
                await up_w.drain()
        except (asyncio.IncompleteReadError, OSError, Refused):
            pass
        finally:
            up_w.close()

    async def _downstream(
        self, up_r: asyncio.StreamReader, writer: asyncio.StreamWriter, req_salt: bytes
    ) -> None:
        enc: Crypter | None = None
        try:
            while data := await up_r.read(65535):
                if enc is None:
                    salt = os.urandom(self.size)
                    enc = Crypter(self.psk, salt)
                    header = struct.pack(">BQ", 1, int(self.now())) + req_salt + struct.pack(">H", len(data))
                    writer.write(salt + enc.seal(header) + enc.seal(data))
                else:
                    writer.write(enc.seal(struct.pack(">H", len(data))) + enc.seal(data))
                await writer.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.write_eof()


@asynccontextmanager
async def ss2022_server(
    method: str, psk: bytes, *, clock_offset: float = 0.0, max_skew: float = 30.0
) -> AsyncIterator[tuple[Ss2022Server, int]]:
    """The server on 127.0.0.1 and an ephemeral port: ``(server, port)``."""
    server = Ss2022Server(method, psk, clock_offset=clock_offset, max_skew=max_skew)
    async with tcp_server(server.handle) as port:
        yield server, port
