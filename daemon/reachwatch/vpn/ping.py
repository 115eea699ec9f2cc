"""The data stage inside tunnels that carry IP packets: ICMP echoes to an address inside the tunnel.

WireGuard (``vpn/wgtunnel.py``) and OpenConnect's CSTP carry whole IP packets; nothing like the canary's TCP
stream exists there without a network stack. So the data stage's ``EchoPath`` is ping: echo requests from
our tunnel address to an address inside the tunnel (the VPN server's own tunnel address answers in its
kernel), built and checked in user space (``formats/ip_packets.py``). The volume travels as payloads of
``PAYLOAD`` bytes, ``WINDOW`` in flight; a request unanswered after the retransmission timeout is sent
again (UDP loses packets; only ``stall`` seconds without any reply is a stall), and a reply is counted
once, with the payload we sent, or it is ``canary_mismatch``. The timeout follows TCP's (RFC 6298): 1 s
at first, then the smoothed round-trip time plus four times its variation, doubled for each resend of a
request. A fixed short timeout would flood a shaped path with copies and read its queue as loss: exactly
the path a throttling censor makes.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Protocol

from reachwatch.failures import Failure, Stage
from reachwatch.formats.ip_packets import echo_request, parse_echo_reply
from reachwatch.net.errors import NetFailure
from reachwatch.vpn.datastage import Meter, random_payload

PAYLOAD = 1200  # inner packet 1228 bytes: fits every tunnel MTU we meet (WireGuard 1420, CSTP ~1400)
WINDOW = 16
INITIAL_RTO, MIN_RTO, MAX_RTO = 1.0, 0.2, 8.0
SEQ_SPACE = 1 << 16


class RetransmitTimer:
    """RFC 6298's retransmission timeout from round-trip samples (Karn: only first transmissions)."""

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = INITIAL_RTO

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(MAX_RTO, max(MIN_RTO, self.srtt + 4 * self.rttvar))


@dataclass
class _Request:
    payload: bytes
    sent_at: float
    resend_at: float
    resends: int = 0


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
        self.timer = RetransmitTimer()

    async def pump(self, volume: int, meter: Meter, stall: float) -> None:
        sizes = [min(PAYLOAD, volume - offset) for offset in range(0, volume, PAYLOAD)]
        await self._exchange([random_payload(n) for n in sizes], meter, stall)

    async def echo(self, size: int, meter: Meter, stall: float) -> None:
        await self._exchange([random_payload(size)], meter, stall)

    async def _exchange(self, payloads: list[bytes], meter: Meter, stall: float) -> None:
        """Send every payload (``WINDOW`` in flight) until each came back; ``TimeoutError`` after ``stall``
        seconds with no reply at all."""
        pending: dict[int, _Request] = {}
        queue = list(reversed(payloads))
        last_progress = time.monotonic()
        while queue or pending:
            now = time.monotonic()
            while queue and len(pending) < WINDOW:
                seq = self._next_seq()
                pending[seq] = _Request(queue.pop(), now, now + self.timer.rto)
                self._send(seq, pending[seq].payload)
            for seq, request in pending.items():
                if now >= request.resend_at:
                    request.resends += 1
                    request.resend_at = now + min(MAX_RTO, self.timer.rto * 2**request.resends)
                    self._send(seq, request.payload)
            if now - last_progress >= stall:
                raise TimeoutError
            next_resend = min(r.resend_at for r in pending.values()) if pending else now + stall
            wait = max(0.01, min(next_resend - now, stall - (now - last_progress)))
            try:
                async with asyncio.timeout(wait):
                    packet = await self.tunnel.recv()
            except TimeoutError:
                continue
            reply = parse_echo_reply(packet, src=self.destination, dst=self.source, ident=self.ident)
            if reply is None or reply.seq not in pending:
                continue  # other traffic, or a duplicate of a reply already counted
            request = pending.pop(reply.seq)
            if reply.payload != request.payload:
                raise NetFailure(Failure.CANARY_MISMATCH, Stage.TRANSFER, "echo reply differs from request")
            if not request.resends:
                self.timer.sample(time.monotonic() - request.sent_at)
            meter.add(len(reply.payload))
            last_progress = time.monotonic()

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % SEQ_SPACE
        return seq

    def _send(self, seq: int, payload: bytes) -> None:
        self.tunnel.send(echo_request(self.source, self.destination, self.ident, seq, payload))
