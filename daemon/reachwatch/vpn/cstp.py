"""An OpenConnect tunnel in user space: IP packets in and out as CSTP frames on the TLS connection.

After the probe logged in and the server answered ``CONNECT /CSCOSSLC/tunnel`` with ``200``, the same TLS
stream carries CSTP frames (``formats/cstp.py``): the data stage's ICMP echoes go out as ``DATA`` frames,
the server's dead-peer-detection requests are answered as a client must, keepalives are skipped. No tun
device and no privilege: the packets never touch the vantage's own network stack. A ``DISCONNECT`` or
``TERMINATE`` from the server, or the connection's end, is an end of stream.
"""

from __future__ import annotations

import asyncio

from reachwatch.failures import Failure, Stage
from reachwatch.formats import cstp
from reachwatch.net.errors import NetFailure, classified


class CstpTunnel:
    """``vpn.ping.PacketTunnel`` over an established CSTP connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, early: bytes = b""
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._pending = bytearray(early)  # frame bytes that arrived with the CONNECT answer

    def send(self, packet: bytes) -> None:
        self.writer.write(cstp.frame(cstp.FrameType.DATA, packet))

    async def recv(self) -> bytes:
        while True:
            try:
                kind, length = cstp.parse_header(await self._read(cstp.HEADER_LEN))
            except cstp.CstpError as exc:
                raise NetFailure(Failure.PROTOCOL_ERROR, Stage.TRANSFER, str(exc)) from exc
            payload = await self._read(length)
            if kind == cstp.FrameType.DATA:
                return payload
            if kind == cstp.FrameType.DPD_REQUEST:
                self.writer.write(cstp.frame(cstp.FrameType.DPD_RESPONSE, payload))
            elif kind in (cstp.FrameType.DISCONNECT, cstp.FrameType.TERMINATE):
                raise EOFError("the server ended the CSTP session")

    async def _read(self, n: int) -> bytes:
        while len(self._pending) < n:
            with classified(Stage.TRANSFER):
                data = await self.reader.read(65536)
            if not data:
                raise EOFError("the CSTP connection closed")
            self._pending += data
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out

    def disconnect(self) -> None:
        """Tell the server we leave (it frees the session's address at once)."""
        self.writer.write(cstp.frame(cstp.FrameType.DISCONNECT))
