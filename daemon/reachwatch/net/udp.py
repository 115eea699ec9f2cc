"""UDP request/response exchanges with a pinned address (DNS, OpenVPN, WireGuard, IKEv2, STUN).

UDP has no connect stage the network can refuse, so "no answer" is the usual failure; an ICMP port
unreachable surfaces as ``connection_refused`` on a connected socket. Replies are bounded by datagram
size and by the probe's deadline; datagrams that fail the caller's ``accept`` check (garbage, replies to
someone else) are dropped and counted, never parsed twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reachwatch.failures import Failure, Stage
from reachwatch.net.errors import NetFailure, classify

MAX_DATAGRAM = 65535
# a hostile peer could flood us; stop reading after this many unacceptable datagrams
MAX_IGNORED = 64


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(maxsize=MAX_IGNORED + 1)

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data[:MAX_DATAGRAM])

    def error_received(self, exc: Exception) -> None:
        if not self.queue.full():
            self.queue.put_nowait(exc)


class UdpSocket:
    """A connected UDP socket: ``send`` datagrams, ``recv`` the next acceptable one."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _Protocol, stage: Stage) -> None:
        self._transport = transport
        self._protocol = protocol
        self.stage = stage
        self.ignored = 0

    def send(self, payload: bytes) -> None:
        self._transport.sendto(payload)

    def local_address(self) -> tuple[str, int]:
        """Our (address, port) on this socket, e.g. for IKEv2 NAT detection hashes."""
        sockname = self._transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    async def recv(self, accept: Callable[[bytes], bool] | None = None) -> bytes:
        """The next datagram that ``accept`` approves; waits until the caller's deadline."""
        while True:
            item = await self._protocol.queue.get()
            if isinstance(item, BaseException):
                raise NetFailure(classify(item), self.stage, f"{type(item).__name__}: {item}")
            if accept is None or accept(item):
                return item
            self.ignored += 1
            if self.ignored >= MAX_IGNORED:
                raise NetFailure(Failure.PROTOCOL_ERROR, self.stage, "too many unexpected datagrams")

    def close(self) -> None:
        self._transport.close()


async def open_udp(ip: str, port: int, stage: Stage = Stage.PROTOCOL_HANDSHAKE) -> UdpSocket:
    """Create a UDP socket connected to ``ip:port`` (so ICMP errors are reported to us)."""
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(_Protocol, remote_addr=(ip, port))
    except OSError as exc:
        raise NetFailure(classify(exc), Stage.CONNECT, str(exc)) from exc
    return UdpSocket(transport, protocol, stage)


async def udp_exchange(
    ip: str,
    port: int,
    payload: bytes,
    *,
    accept: Callable[[bytes], bool] | None = None,
    stage: Stage = Stage.PROTOCOL_HANDSHAKE,
) -> bytes:
    """Send one datagram and return the first acceptable reply. Bounded by the caller's deadline."""
    sock = await open_udp(ip, port, stage)
    try:
        sock.send(payload)
        return await sock.recv(accept)
    finally:
        sock.close()
