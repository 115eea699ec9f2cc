"""The Shadowsocks 2022 (SIP022) TCP stream: one tunnelled connection through a server, over asyncio.

The format (PSK, subkeys, the request and response headers and their checks) is ``formats/ss2022.py``;
this module drives it over a socket. Bounded reads: the response header is ``salt + 27/43 + 16`` bytes,
every later read at most ``0xFFFF + 16``.
"""

from __future__ import annotations

import asyncio
import struct
import time

from reachwatch.formats.shadowsocks import AeadDirection, seal_chunks
from reachwatch.formats.ss2022 import (
    MAX_PAYLOAD,
    METHODS_2022,
    TAG,
    open_response_header,
    request_head,
    response_header_size,
)
from reachwatch.net.dial import close_quietly
from reachwatch.net.socks import encode_address


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

    async def send(self, data: bytes) -> None:
        out = bytearray()
        if self._enc is None:
            head = request_head(self._psk, self._address, data, time.time())
            self._salt, self._enc, data = head.salt, head.sealer, head.rest
            out += head.wire
        out += seal_chunks(self._enc, data, MAX_PAYLOAD)
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
        size = response_header_size(self._key_len)
        wire = await self._read_upto(size)
        if not wire:
            return False
        if len(wire) < size:
            raise asyncio.IncompleteReadError(wire, size)
        head = open_response_header(self._psk, self._salt, wire, time.time())
        self._dec, self._next_len, self.skew_s = head.opener, head.first_len, head.skew_s
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
