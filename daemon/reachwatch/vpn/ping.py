"""The data stage inside tunnels that carry IP packets: ICMP echoes to an address inside the tunnel.

WireGuard (``vpn/wgtunnel.py``) and OpenConnect's CSTP carry whole IP packets; nothing like the canary's TCP
stream exists there without a network stack. So the data stage's ``EchoPath`` is ping: echo requests from
our tunnel address to an address inside the tunnel (the VPN server's own tunnel address answers in its
kernel), built and checked in user space (``formats/ip_packets.py``). The volume travels as payloads of
``PAYLOAD`` bytes, ``WINDOW`` in flight; a request unanswered after ``RETRY`` seconds is sent again (UDP
loses packets; only ``stall`` seconds without any reply is a stall), and a reply is counted once, with
the payload we sent, or it is ``canary_mismatch``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Protocol

from reachwatch.failures import Failure, Stage
from reachwatch.formats.ip_packets import echo_request, parse_echo_reply
from reachwatch.net.errors import NetFailure
from reachwatch.vpn.datastage import Meter, random_payload

PAYLOAD = 1200  # inner packet 1228 bytes: fits every tunnel MTU we meet (WireGuard 1420, CSTP ~1400)
WINDOW = 16
RETRY = 0.5
SEQ_SPACE = 1 << 16


class PacketTunnel(Protocol):
    """A tunnel that carries IP packets: ``send`` one, ``recv`` the next inner packet that arrived."""

    def send(self, packet: bytes) -> None: ...

    async def recv(self) -> bytes: ...


class PingEcho:
    """``vpn.datastage.EchoPath`` over ICMP echo inside a ``PacketTunnel``."""

    def __init__(self, tunnel: PacketTunnel, *, source: str, destination: str) -> None:
        self.tunnel = tunnel
        self.source = source
        self.destination = destination
        self.ident = int.from_bytes(os.urandom(2), "big")
        self._seq = 0

    async def pump(self, volume: int, meter: Meter, stall: float) -> None:
        sizes = [min(PAYLOAD, volume - offset) for offset in range(0, volume, PAYLOAD)]
        await self._exchange([random_payload(n) for n in sizes], meter, stall)

    async def echo(self, size: int, meter: Meter, stall: float) -> None:
        await self._exchange([random_payload(size)], meter, stall)

    async def _exchange(self, payloads: list[bytes], meter: Meter, stall: float) -> None:
        """Send every payload (``WINDOW`` in flight) until each came back; ``TimeoutError`` after ``stall``
        seconds with no reply at all."""
        pending: dict[int, tuple[bytes, float]] = {}  # seq -> (payload, last sent)
        queue = list(reversed(payloads))
        last_progress = time.monotonic()
        while queue or pending:
            now = time.monotonic()
            while queue and len(pending) < WINDOW:
                seq = self._next_seq()
                payload = queue.pop()
                pending[seq] = (payload, now)
                self._send(seq, payload)
            for seq, (payload, sent) in list(pending.items()):
                if now - sent >= RETRY:
                    pending[seq] = (payload, now)
                    self._send(seq, payload)
            if now - last_progress >= stall:
                raise TimeoutError
            wait = min(RETRY, stall - (now - last_progress))
            try:
                async with asyncio.timeout(wait):
                    packet = await self.tunnel.recv()
            except TimeoutError:
                continue
            reply = parse_echo_reply(packet, src=self.destination, dst=self.source, ident=self.ident)
            if reply is None or reply.seq not in pending:
                continue  # other traffic, or a duplicate of a reply already counted
            if reply.payload != pending[reply.seq][0]:
                raise NetFailure(Failure.CANARY_MISMATCH, Stage.TRANSFER, "echo reply differs from request")
            del pending[reply.seq]
            meter.add(len(reply.payload))
            last_progress = time.monotonic()

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % SEQ_SPACE
        return seq

    def _send(self, seq: int, payload: bytes) -> None:
        self.tunnel.send(echo_request(self.source, self.destination, self.ident, seq, payload))
