"""Relays between a local client's socket and the connection the daemon made to the real server.

Used when a client runs where it cannot reach the network itself (a VPN client in its own network
namespace, ``vpn/tunnel_netns.py``): the daemon makes the outside connection (pinned address, classified
failures, the same flow a censor sees) and copies bytes or datagrams both ways until cancelled. Every
read is bounded; a relay holds at most one chunk or one datagram at a time per direction.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from reachwatch.net.errors import NetFailure
from reachwatch.net.udp import UdpSocket

CHUNK = 64 * 1024


class _ClientSide(asyncio.DatagramProtocol):
    """The client's socket: what it sends goes to the server; its address is learnt on the way."""

    def __init__(self, outer: UdpSocket) -> None:
        self.outer = outer
        self.peer: tuple[str, int] | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.peer = addr
        self.outer.send(data)


async def relay_udp(inner: socket.socket, outer: UdpSocket) -> None:
    """Datagrams from the client (``inner``, bound inside) to the server and back, until cancelled.

    The client's address is learnt from its first datagram; errors on the outside (an ICMP port
    unreachable) are the client's to notice through silence, as on a direct path. Datagram endpoints
    rather than ``sock_recvfrom``: the daemon's uvloop does not implement the latter.
    """
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(lambda: _ClientSide(outer), sock=inner)
    try:
        while True:
            try:
                data = await outer.recv()
            except NetFailure:
                continue
            if client.peer is not None:
                transport.sendto(data, client.peer)
    finally:
        transport.close()


async def relay_tcp(
    listener: socket.socket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Accept the client's one connection on ``listener`` and splice it to the server's stream."""
    loop = asyncio.get_running_loop()
    conn, _ = await loop.sock_accept(listener)
    listener.close()
    client_reader, client_writer = await asyncio.open_connection(sock=conn)

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(CHUNK):
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()

    try:
        await asyncio.gather(pipe(client_reader, writer), pipe(reader, client_writer))
    finally:
        client_writer.close()
