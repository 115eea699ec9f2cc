"""The Shadowsocks AEAD (2017) TCP stream: one tunnelled connection through a server, over asyncio.

The format (methods, key derivation, chunk framing) is ``formats/shadowsocks.py``; this module drives it
over a socket. The client's first payload starts with the target address (``ATYP addr port``, as in
SOCKS5). The server sends nothing until the target answers, and never answers a client without the key:
silence or a close is all a wrong key gets, by design (probe resistance).

Every read is bounded: a salt, a 18-byte length block, at most 0x3FFF + 16 bytes of payload.
"""

from __future__ import annotations

import asyncio
import os

from reachwatch.formats.errors import StreamCorrupt
from reachwatch.formats.shadowsocks import (
    MAX_PAYLOAD,
    METHODS,
    TAG,
    AeadDirection,
    evp_bytes_to_key,
    seal_chunks,
    session_subkey,
)
from reachwatch.net.dial import close_quietly
from reachwatch.net.socks import encode_address


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
        out += seal_chunks(self._enc, data)
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
